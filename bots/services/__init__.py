"""Every write of the staff bot. Import services from their modules (updates, alerts, taps, digest)."""
