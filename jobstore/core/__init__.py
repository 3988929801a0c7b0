"""The core services every facade calls: jobs, accounts, retention."""
