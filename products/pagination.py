from django.conf import settings
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


class StrictPageNumberPagination(PageNumberPagination):
    """Page-number pagination whose `page` and `page_size` are validated, not guessed.

    A page size outside 1..max_page_size, or a page that is not a positive integer,
    is a 400 rather than silently replaced by a default.
    """

    page_size = settings.REST_FRAMEWORK["PAGE_SIZE"]
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        return self._positive_int(raw, self.page_size_query_param, self.max_page_size)

    def get_page_number(self, request, paginator):
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        return self._positive_int(raw, self.page_query_param, maximum=None)

    @staticmethod
    def _positive_int(raw: str, name: str, maximum: int | None) -> int:
        top = maximum if maximum is not None else 10**9
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 10) or not 1 <= int(raw) <= top:
            raise ValidationError({name: [f"Must be an integer from 1 to {top}."]})
        return int(raw)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.page_query_param: {"minimum": 1, "maximum": 10**9},
            self.page_size_query_param: {"minimum": 1, "maximum": self.max_page_size},
        }
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters
