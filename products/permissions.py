from core.permissions import HasPermission

from .roles import ADJUST_STOCK, COUNT_STOCK, VIEW_MOVEMENTS


class CanAdjustStock(HasPermission):
    """Increment, decrement and bulk adjustments."""

    permission = ADJUST_STOCK


class CanCountStock(HasPermission):
    permission = COUNT_STOCK


class CanViewMovements(HasPermission):
    permission = VIEW_MOVEMENTS
