"""SBOMs in procurement: read CycloneDX and SPDX documents, validate them, check the minimum
elements a procurement clause requires, match their components to loaded advisories, apply VEX,
and link them to the devices they describe."""
