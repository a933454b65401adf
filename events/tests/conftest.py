# The products tests' factories and clients serve the events tests too.
from products.tests.conftest import (  # noqa: F401
    _fresh_throttle_counts,
    api_client,
    closed_port,
    make_product,
    make_user,
    requires_postgres,
    run_together,
    token_client,
)
