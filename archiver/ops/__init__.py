"""What users do with the archive: report, status, restore, mirror, rewrite, verify, gc, export."""
