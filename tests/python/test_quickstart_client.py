"""The README's quickstart through a Python client generated from the
server's own /openapi.json (openapi-python-client; scripts/python-client-check.sh
generates it, starts `recwal serve` and runs this file).

Environment: RECWAL_URL (the server), RECWAL_TOKEN (its token), RECWAL_MODELS
(tests/fixtures/models), and the generated package `recwal_client` on
PYTHONPATH. Every answer is parsed by the generated models: a field the
document does not declare, or a declared one missing, fails here.
"""

import os
import unittest
from io import BytesIO
from pathlib import Path

import httpx

from recwal_client import AuthenticatedClient, Client
from recwal_client.api.events import ingest, ingest_one
from recwal_client.api.items import put_item, get_item
from recwal_client.api.models import activate_model, add_model, list_models, model_status
from recwal_client.api.probes import healthz, readyz
from recwal_client.api.recommend import popular, recommend, similar
from recwal_client.api.users import interactions
from recwal_client.models import (
    Health,
    Implicit,
    ImplicitKind,
    IngestRequest,
    IngestResponse,
    ItemBody,
    Item,
    Items,
    Logged,
    ModelInfo,
    ModelStatus,
    Models,
    Problem,
    Rating,
    Readiness,
    Recommendations,
    RecommendStrategy,
)
from recwal_client.types import File

URL = os.environ["RECWAL_URL"]
TOKEN = os.environ["RECWAL_TOKEN"]
MODELS = Path(os.environ["RECWAL_MODELS"])


CLIENTS = []


def client():
    made = AuthenticatedClient(base_url=URL, token=TOKEN, raise_on_unexpected_status=True)
    CLIENTS.append(made)
    return made


def anonymous_client():
    made = Client(base_url=URL, raise_on_unexpected_status=True)
    CLIENTS.append(made)
    return made


def tearDownModule():
    for made in CLIENTS:
        made.get_httpx_client().close()


class Quickstart(unittest.TestCase):
    maxDiff = None

    def test_1_probes_need_no_token(self):
        anonymous = anonymous_client()
        self.assertIsInstance(healthz.sync(client=anonymous), Health)
        ready = readyz.sync_detailed(client=anonymous)
        self.assertEqual(ready.status_code, 200)
        self.assertIsInstance(ready.parsed, Readiness)
        self.assertTrue(ready.parsed.ready)

    def test_2_ingest_recommend_similar_popular(self):
        api = client()
        # The README's three events, and a rating.
        answer = ingest.sync(
            client=api,
            body=IngestRequest(
                events=[
                    Implicit(user="alice", item="book", kind=ImplicitKind.PURCHASE),
                    Implicit(user="bob", item="book", kind=ImplicitKind.CLICK),
                    Implicit(user="bob", item="lamp", kind=ImplicitKind.CLICK),
                ]
            ),
        )
        self.assertIsInstance(answer, IngestResponse)
        self.assertEqual(len(answer.receipts), 3)
        self.assertTrue(all(receipt.lsn > 0 and not receipt.duplicate for receipt in answer.receipts))
        one = ingest_one.sync(
            client=api, body=Rating(user="carol", item="lamp", kind="rating", value=4.5, event_id="carol-lamp-1")
        )
        self.assertIsInstance(one, IngestResponse)
        again = ingest_one.sync(
            client=api, body=Rating(user="carol", item="lamp", kind="rating", value=4.5, event_id="carol-lamp-1")
        )
        self.assertTrue(again.receipts[0].duplicate, "the same event id is a duplicate")

        # curl -s '127.0.0.1:8089/v1/users/alice/recommend?n=5&strategy=user_cf'
        answer = recommend.sync("alice", client=api, n=5, strategy=RecommendStrategy.USER_CF)
        self.assertIsInstance(answer, Recommendations)
        self.assertFalse(answer.cold_start)
        self.assertEqual([scored.item for scored in answer.items], ["lamp"])
        self.assertTrue(answer.items[0].reasons, "each item says why")

        related = similar.sync("book", client=api, n=5)
        self.assertIsInstance(related, Items)
        self.assertIn("lamp", [scored.item for scored in related.items])

        top = popular.sync(client=api, n=2)
        self.assertIsInstance(top, Items)
        self.assertEqual({scored.item for scored in top.items}, {"book", "lamp"})

        seen = interactions.sync("bob", client=api)
        self.assertEqual(sorted(interaction.item for interaction in seen.interactions), ["book", "lamp"])

    def test_3_catalogue_round_trip(self):
        api = client()
        body = ItemBody.from_dict({"categories": ["home"], "labels": {"price": 19.5, "brand": "acme"}})
        logged = put_item.sync("lamp", client=api, body=body)
        self.assertIsInstance(logged, Logged)
        item = get_item.sync("lamp", client=api)
        self.assertIsInstance(item, Item)
        self.assertEqual(item.categories, ["home"])
        self.assertEqual(item.labels.to_dict(), {"price": 19.5, "brand": "acme"})
        filtered = popular.sync(client=api, category=["home"])
        self.assertEqual([scored.item for scored in filtered.items], ["lamp"])

    def test_4_model_upload_and_activation(self):
        api = client()
        data = (MODELS / "linear_v1.onnx").read_bytes()
        added = add_model.sync_detailed(
            client=api, body=File(payload=BytesIO(data), mime_type="application/octet-stream")
        )
        self.assertEqual(added.status_code, 201, added.content)
        self.assertIsInstance(added.parsed, ModelInfo)
        version = added.parsed.version
        self.assertEqual(added.parsed.bytes_, len(data))
        self.assertFalse(added.parsed.active)

        active = activate_model.sync(version, client=api)
        self.assertIsInstance(active, ModelInfo)
        self.assertTrue(active.active)
        listed = list_models.sync(client=api)
        self.assertIsInstance(listed, Models)
        self.assertEqual([(model.version, model.active) for model in listed.models], [(version, True)])
        status = model_status.sync(client=api)
        self.assertIsInstance(status, ModelStatus)
        self.assertEqual(status.active, version)

        # Recommendations are now ranked by that version.
        answer = recommend.sync("alice", client=api, n=5)
        self.assertEqual(answer.ranking.to_dict(), {"kind": "model", "version": version})

    def test_5_errors_are_problem_json(self):
        api = client()
        # An n over the server's max_n (the document's maximum).
        with httpx.Client() as plain:
            raw = plain.get(
                f"{URL}/v1/users/alice/recommend", params={"n": 100000}, headers={"authorization": f"Bearer {TOKEN}"}
            )
        self.assertEqual(raw.status_code, 400)
        self.assertEqual(raw.headers["content-type"], "application/problem+json")
        answer = recommend.sync_detailed("alice", client=api, n=100000)
        self.assertEqual(answer.status_code, 400)
        self.assertIsInstance(answer.parsed, Problem)
        self.assertEqual(answer.parsed.status, 400)
        self.assertEqual(answer.parsed.type_, "about:blank")
        self.assertIn("invalid n", answer.parsed.detail)
        # An unknown model version: 404, problem+json.
        missing = activate_model.sync_detailed(999, client=api)
        self.assertEqual(missing.status_code, 404)
        self.assertEqual(missing.headers["content-type"], "application/problem+json")
        self.assertIsInstance(missing.parsed, Problem)
        self.assertEqual(missing.parsed.status, 404)
        # No token: 401, problem+json, and the challenge.
        anonymous = anonymous_client()
        refused = popular.sync_detailed(client=anonymous)
        self.assertEqual(refused.status_code, 401)
        self.assertEqual(refused.headers["content-type"], "application/problem+json")
        self.assertEqual(refused.headers["www-authenticate"], "Bearer")
        self.assertIsInstance(refused.parsed, Problem)
        self.assertEqual(refused.parsed.title, "unauthorized")


if __name__ == "__main__":
    unittest.main(verbosity=2)
