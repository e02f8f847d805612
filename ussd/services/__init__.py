"""Every write of the borrower channels. Import services from the modules here."""
