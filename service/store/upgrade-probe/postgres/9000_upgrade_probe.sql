-- Only in builds with the `upgrade-probe` feature: the packaging test's
-- "next release", whose one new migration an upgrade must apply while
-- keeping every row the previous release wrote. Never in a real release.
CREATE TABLE upgrade_probe (note TEXT NOT NULL);
INSERT INTO upgrade_probe (note) VALUES ('applied by the upgrade');
