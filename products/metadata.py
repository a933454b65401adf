"""What `OPTIONS` says about an endpoint: the body each of its methods takes."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.metadata import SimpleMetadata
from rest_framework.request import clone_request


class ActionMetadata(SimpleMetadata):
    """DRF's metadata, with each method described by the action it routes to.

    A viewset's `action` comes from its action map, which has no entry for `options`:
    under OPTIONS it is None, so `get_serializer_class` answered for no action at all,
    and `increment/` described a product's fields as its POST body. Here `action` is set,
    for each method described, to the action that method would run.
    """

    def determine_actions(self, request, view):
        action_map = getattr(view, "action_map", None) or {}
        routed = getattr(view, "action", None)
        actions = {}
        for method in sorted({"PUT", "POST"} & set(view.allowed_methods)):
            view.request = clone_request(request, method)
            view.action = action_map.get(method.lower(), routed)
            try:
                view.check_permissions(view.request)
                if method == "PUT":
                    view.get_object()  # object permissions, as DRF's does
            except (exceptions.APIException, PermissionDenied, Http404):
                continue  # not allowed to use it: not described
            else:
                actions[method] = self.get_serializer_info(view.get_serializer())
            finally:
                view.request, view.action = request, routed
        return actions
