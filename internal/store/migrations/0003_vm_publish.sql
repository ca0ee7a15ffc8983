-- Persistent port forwards (vm create/set --publish): a JSON array of
-- {"host_addr","host_port","guest_port"}; '' is none.
ALTER TABLE vms ADD COLUMN publish TEXT NOT NULL DEFAULT '';
