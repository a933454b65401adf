class ReadOnlyAdmin:
    """An admin for records that only the services write (the ledger, events): list and
    read, never add, change or delete."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
