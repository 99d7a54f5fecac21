"""One module per firewall configuration format, each turning a file into a model.Ruleset."""
