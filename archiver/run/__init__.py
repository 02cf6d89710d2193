"""A run: the crawl pipeline, the scheduler that feeds the fetcher, and the run lock."""
