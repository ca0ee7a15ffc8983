-- Port forwards. publish: persistent port forwards (vm create/set --publish): a JSON array of
-- {"host_addr","host_port","guest_port"}; '' is none.
ALTER TABLE vms ADD COLUMN publish TEXT NOT NULL DEFAULT '';
-- auto_forward: follow the guest's listening ports; NULL follows
-- config.toml's auto_forward, 0 off, 1 on.
ALTER TABLE vms ADD COLUMN auto_forward INTEGER;
