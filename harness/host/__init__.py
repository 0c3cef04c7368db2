"""The Docker host: the daemon client and its facts, what the harness reads of the machine
(load, firewall), the changes it makes to it for a remedy's rerun, doctor, and cleanup."""
