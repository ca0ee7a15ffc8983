-- ImageInUse and image deletion look VMs up by image.
CREATE INDEX vms_image ON vms(image);
CREATE INDEX vms_state ON vms(state);
