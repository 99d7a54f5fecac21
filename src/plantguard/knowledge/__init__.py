"""What plantguard knows about the outside world: vulnerability advisories (CSAF), the CISA
KEV catalogue, NVD CVE records, EPSS scores, default credentials; loaders and matching."""
