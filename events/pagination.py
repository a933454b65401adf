from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from core.pagination import ValidatedPageSize


class AfterPositionPagination(ValidatedPageSize, BasePagination):
    """The feed: the events after a position, oldest first, and `next` to continue.

    No count and no page numbers: a consumer keeps the last `position` it processed and
    asks for what came after it, however long the feed grows.
    """

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.page_size_used = self.get_page_size(request)
        self.page = list(queryset[: self.page_size_used])
        return self.page

    def get_paginated_response(self, data):
        following = None
        if len(self.page) == self.page_size_used:
            url = self.request.build_absolute_uri()
            following = replace_query_param(url, "after", self.page[-1].position)
        return Response({"next": following, "results": data})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["next", "results"],
            "properties": {
                "next": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "description": "The following page, while this one is full; null "
                    "when you have caught up (ask again later with `after`).",
                },
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": "Events per page.",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            }
        ]
