-- An operation's input is now its typed work (tundra_api::ops::Work): one
-- JSON document tagged by `kind`, carrying its target, instead of a kind
-- string plus loose fields. Rows written by earlier releases are rewritten
-- here, so an operation pending at upgrade resumes under the new tundrad.
UPDATE operations SET input = jsonb_build_object('kind', 'image.import', 'image_id', target_id)::text
 WHERE kind = 'image.import';
UPDATE operations SET input = jsonb_build_object('kind', kind, 'machine_id', target_id)::text
 WHERE kind IN ('machine.manage', 'machine.inspect', 'machine.clean');
UPDATE operations SET input = jsonb_build_object('kind', 'machine.power', 'machine_id', target_id,
        'action', COALESCE(input::jsonb ->> 'action', 'reboot'))::text
 WHERE kind = 'machine.power';
UPDATE operations SET input = jsonb_build_object('kind', 'machine.deploy', 'machine_id', target_id,
        'image', jsonb_build_object('id', input::jsonb -> 'image_id',
                                    'sha256', input::jsonb -> 'sha256',
                                    'size_bytes', COALESCE((input::jsonb ->> 'size_bytes')::bigint, 0)),
        'node_id', input::jsonb -> 'node_id')::text
 WHERE kind = 'machine.deploy';
UPDATE operations SET input = jsonb_build_object('kind', 'machine.delete', 'machine_id', target_id,
        'node_id', input::jsonb -> 'node_id')::text
 WHERE kind = 'machine.delete';
