"""Firewall configurations as one rule model (model.py): parsers per vendor format (parsers/),
reachability between the site's zones, the firewall.* checks and the kernel proof."""
