from core.permissions import HasPermission
from products.roles import FULFIL_RESERVATIONS, RELEASE_RESERVATIONS, RESERVE_STOCK


class CanReserve(HasPermission):
    permission = RESERVE_STOCK


class CanFulfil(HasPermission):
    permission = FULFIL_RESERVATIONS


class CanRelease(HasPermission):
    permission = RELEASE_RESERVATIONS
