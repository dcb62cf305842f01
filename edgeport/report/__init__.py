"""Human-readable reports built from manifests."""
