-- An operation's input is now its typed work (tundra_api::ops::Work): one
-- JSON document tagged by `kind`, carrying its target, instead of a kind
-- string plus loose fields. Rows written by earlier releases are rewritten
-- here, so an operation pending at upgrade resumes under the new tundrad.
UPDATE operations SET input = json_object('kind', 'image.import', 'image_id', target_id)
 WHERE kind = 'image.import';
UPDATE operations SET input = json_object('kind', kind, 'machine_id', target_id)
 WHERE kind IN ('machine.manage', 'machine.inspect', 'machine.clean');
UPDATE operations SET input = json_object('kind', 'machine.power', 'machine_id', target_id,
        'action', COALESCE(json_extract(input, '$.action'), 'reboot'))
 WHERE kind = 'machine.power';
UPDATE operations SET input = json_object('kind', 'machine.deploy', 'machine_id', target_id,
        'image', json_object('id', json_extract(input, '$.image_id'),
                             'sha256', json_extract(input, '$.sha256'),
                             'size_bytes', COALESCE(json_extract(input, '$.size_bytes'), 0)),
        'node_id', json_extract(input, '$.node_id'))
 WHERE kind = 'machine.deploy';
UPDATE operations SET input = json_object('kind', 'machine.delete', 'machine_id', target_id,
        'node_id', json_extract(input, '$.node_id'))
 WHERE kind = 'machine.delete';
