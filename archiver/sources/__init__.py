"""Where posts come from: folders of files, and sites (listings, sitemaps, feeds, robots)."""
