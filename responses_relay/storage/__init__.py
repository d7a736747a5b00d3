"""State that must outlive one instance, in the Function App's own storage account (Table
Storage; Azurite locally): each kind of record in a module of its own, on `tables.Tables`."""
