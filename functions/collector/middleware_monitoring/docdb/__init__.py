"""Amazon DocumentDB (and other MongoDB-wire servers): serverStatus over pymongo (SPEC 3.4)."""
