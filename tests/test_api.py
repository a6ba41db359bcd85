"""The store's REST API: CRUD and ordering, choosing takes, recording, export jobs, errors, schema."""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image
from support import synthetic_take

from stream.live.config import ServerConfig
from stream.live.engine import Engine
from stream.live.scene import LiveScene
from stream.live.session import Session
from stream.record.recorder import RecorderConfig
from stream.store import Store
from stream.web.api import ENDPOINTS
from stream.web.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette would rather its test client used httpx2
    from starlette.testclient import TestClient


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ServerConfig(data_dir=tmp_path / "data"), engine=engine), base_url="http://127.0.0.1") as http:
        yield http


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def refused(response: Any, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    assert all(w in body["message"] for w in words), body["message"]


def make_episode(http: TestClient, n_scenes: int = 2) -> tuple[str, str, list[str]]:
    series = ok(http.post("/api/series", json={"name": "Harbour Lights"}), 201)
    episode = ok(http.post(f"/api/series/{series['id']}/episodes", json={"name": "Pilot"}), 201)
    scenes = [ok(http.post(f"/api/episodes/{episode['id']}/scenes", json={"name": f"S{i}"}), 201)["id"]
              for i in range(n_scenes)]
    return series["id"], episode["id"], scenes


def test_series_episodes_scenes_and_takes_over_rest(client: TestClient) -> None:
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    series_id, _, _ = make_episode(client, 0)
    maya = ok(client.post(f"/api/series/{series_id}/characters", json={"name": "maya"}), 201)
    assert maya["name"] == "MAYA" and maya["spec"]["voice"]["variant"] == "f2"  # the built-in look and voice
    custom = {"name": "Nell", "look": {"hair_style": "bob", "hair_rgb": [200, 40, 40]}, "voice": {"pitch": 70}, "seed": 3}
    nell = ok(client.post(f"/api/series/{series_id}/characters", json=custom), 201)
    assert nell["spec"]["look"]["hair_rgb"] == [200, 40, 40]
    kitchen = ok(client.post(f"/api/series/{series_id}/sets", json={"name": "Mum's kitchen", "backdrop": "kitchen"}), 201)

    episodes = [ok(client.post(f"/api/series/{series_id}/episodes", json={"name": f"Ep {i}"}), 201) for i in range(3)]
    ok(client.patch(f"/api/episodes/{episodes[2]['id']}", json={"position": 0, "name": "Ep 2 (cold open)"}))
    detail = ok(client.get(f"/api/series/{series_id}"))
    assert [e["name"] for e in detail["episodes"]] == ["Ep 2 (cold open)", "Pilot", "Ep 0", "Ep 1"]
    assert [c["name"] for c in detail["characters"]] == ["MAYA", "NELL"] and detail["sets"][0]["id"] == kitchen["id"]

    ep = episodes[0]["id"]
    a = ok(client.post(f"/api/episodes/{ep}/scenes", json={"name": "Breakfast", "set_id": kitchen["id"]}), 201)
    b = ok(client.post(f"/api/episodes/{ep}/scenes", json={"name": "Opening", "position": 0, "transition_ms": 0}), 201)
    assert [s["id"] for s in ok(client.get(f"/api/episodes/{ep}/scenes"))["scenes"]] == [b["id"], a["id"]]
    first = synthetic_take(store, a["id"], colour=(200, 0, 0), freq_hz=400, frames=5)
    second = synthetic_take(store, a["id"], colour=(0, 200, 0), freq_hz=500, frames=6)
    assert ok(client.get(f"/api/scenes/{a['id']}"))["playing_take_id"] == second.id  # latest by default
    assert ok(client.post(f"/api/takes/{first.id}/choose"))["playing_take_id"] == first.id
    scene = ok(client.patch(f"/api/scenes/{a['id']}", json={"chosen_take_id": None, "transition_ms": 480, "name": "Brunch"}))
    assert (scene["playing_take_id"], scene["transition_ms"], scene["name"]) == (second.id, 480, "Brunch")
    assert ok(client.patch(f"/api/takes/{first.id}", json={"name": "the good one"}))["name"] == "the good one"
    take = ok(client.get(f"/api/takes/{second.id}"))
    assert take["frames"] == 6 and take["duration_s"] == 0.24 and take["lines"] == []

    ok(client.delete(f"/api/takes/{second.id}"), 204)
    refused(client.get(f"/api/takes/{second.id}"), 404, "not_found", second.id)
    ok(client.delete(f"/api/episodes/{ep}"), 204)
    assert not store.media.take_dir(first.id).exists()
    ok(client.delete(f"/api/series/{series_id}"), 204)
    assert ok(client.get("/api/series"))["series"] == []


def test_bad_requests_get_clear_errors(client: TestClient) -> None:
    series_id, episode_id, (scene_a, scene_b) = make_episode(client)
    refused(client.post("/api/series", json={"name": "Season 1/Extras"}), 400, "bad_name", "path separator '/'")
    refused(client.post(f"/api/series/{series_id}/episodes", json={"name": "..\\x"}), 400, "bad_name", "'\\\\'")
    refused(client.post("/api/series", content=b"{nope"), 400, "bad_json", "not JSON")
    refused(client.post("/api/series", json=["a"]), 400, "bad_json", "JSON object")
    refused(client.post("/api/series", json={}), 400, "bad_name", "must be a string")
    missing = "ep_00000000000000aa"
    refused(client.get(f"/api/episodes/{missing}"), 404, "not_found", missing)
    refused(client.patch("/api/scenes/sc_00000000000000aa", json={"name": "x"}), 404, "not_found")
    refused(client.delete("/api/takes/tk_00000000000000aa"), 404, "not_found")
    refused(client.get("/api/series/nonsense/episodes"), 404, "not_found", "nonsense")
    refused(client.patch(f"/api/episodes/{episode_id}", json={"position": 5}), 400, "bad_position", "from 0 to 0")
    refused(client.patch(f"/api/scenes/{scene_a}", json={"transition_ms": 30}), 400, "bad_transition", "40 ms")
    refused(client.post(f"/api/series/{series_id}/sets", json={"name": "Moon", "backdrop": "moonbase"}), 400, "bad_set", "known sets")
    refused(client.post(f"/api/series/{series_id}/characters", json={"name": "X", "look": {"hair_style": "mohawk"}}),
            400, "bad_character", "hair_style")
    ok(client.post(f"/api/series/{series_id}/characters", json={"name": "LEO"}), 201)
    refused(client.post(f"/api/series/{series_id}/characters", json={"name": "leo"}), 409, "duplicate_name", "LEO")
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    take = synthetic_take(store, scene_a, colour=(1, 2, 3), freq_hz=300, frames=3)
    refused(client.patch(f"/api/scenes/{scene_b}", json={"chosen_take_id": take.id}), 400, "bad_take", "another scene")


def test_the_openapi_schema_describes_every_endpoint(client: TestClient) -> None:
    schema = ok(client.get("/api/openapi.json"))
    assert schema["openapi"].startswith("3.")
    for endpoint in ENDPOINTS:
        assert endpoint.method.lower() in schema["paths"][endpoint.path], endpoint.path
    take = schema["components"]["schemas"]["Take"]["properties"]
    assert take["frames"] == {"type": "integer"} and take["ended_at"] == {"type": "number", "nullable": True}
    create = schema["paths"]["/api/series/{series_id}/episodes"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["required"] == ["name"]
    assert "507" in create["responses"]


def test_an_export_job_runs_and_its_files_download(client: TestClient, tmp_path: Path) -> None:
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    _, episode_id, scenes = make_episode(client)
    refused(client.post(f"/api/episodes/{episode_id}/export"), 409, "nothing_to_export", "record or render a take")
    refused(client.post("/api/episodes/ep_00000000000000aa/export"), 404, "not_found")
    synthetic_take(store, scenes[0], colour=(200, 0, 0), freq_hz=400, frames=15,
                   lines=[("MAYA", "Hello & <welcome>", 1920, 9600)])
    synthetic_take(store, scenes[1], colour=(0, 0, 200), freq_hz=600, frames=10)
    job = ok(client.post(f"/api/episodes/{episode_id}/export"), 202)
    deadline = time.monotonic() + 30
    while job["status"] == "running" and time.monotonic() < deadline:
        early = client.get(f"/api/exports/{job['id']}/files/mp4")
        if early.status_code == 200:  # it finished between the two requests
            assert ok(client.get(f"/api/exports/{job['id']}"))["status"] == "done"
        else:
            refused(early, 409, "not_ready")
        time.sleep(0.05)
        job = ok(client.get(f"/api/exports/{job['id']}"))
    assert job["status"] == "done" and job["frames"] == 25 and job["progress"] == 1, job
    mp4 = client.get(f"/api/exports/{job['id']}/files/mp4")
    assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4"
    (tmp_path / "dl.mp4").write_bytes(mp4.content)
    with av.open(str(tmp_path / "dl.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 25
    vtt = client.get(f"/api/exports/{job['id']}/files/vtt").text
    assert "00:00:00.040 --> 00:00:00.200\n<v MAYA>Hello &amp; &lt;welcome&gt;" in vtt
    assert client.get(f"/api/exports/{job['id']}/files/otio").json()["OTIO_SCHEMA"].startswith("Timeline")
    refused(client.get(f"/api/exports/{job['id']}/files/exe"), 400, "bad_kind", "mp4, srt, vtt, otio")


def test_recording_over_rest_and_its_errors(client: TestClient, engine: Engine) -> None:
    _, _, (scene_id, _) = make_episode(client)
    app: Any = client.app
    scene = LiveScene(cast=engine.cast, speech=engine.speech, synth_executor=engine.synth_executor)
    session = Session(engine=engine, config=app.state.config, scene=scene)
    session.recordings = app.state.recordings
    app.state.sessions.sessions[session.id] = session
    url = f"/api/sessions/{session.id}/record?secret={session.secret}"
    refused(client.post("/api/sessions/nope/record", json={"scene_id": scene_id}), 404, "not_found", "session")
    refused(client.post(url, json={}), 400, "bad_field", "'scene_id'")
    refused(client.post(url, json={"scene_id": "sc_00000000000000aa"}), 404, "not_found", "scene")
    refused(client.post(url, json={"scene_id": scene_id, "take_name": "a/b"}), 400, "bad_name")
    roomy = app.state.recordings.config
    app.state.recordings.config = RecorderConfig(min_free_bytes=1 << 62)
    refused(client.post(url, json={"scene_id": scene_id}), 507, "disk_full", "MiB free")
    app.state.recordings.config = roomy
    take = ok(client.post(url, json={"scene_id": scene_id, "take_name": "Take A"}), 201)
    assert take["status"] == "recording" and take["cast"] == ["MAYA", "LEO"] and take["set_name"] == "studio"
    refused(client.post(url, json={"scene_id": scene_id}), 409, "already_recording", take["id"])
    stopped = ok(client.delete(url))
    assert stopped["id"] == take["id"] and stopped["status"] == "complete"
    refused(client.delete(url), 409, "not_recording")
    series = ok(client.get("/api/series"))["series"][0]
    assert [c["name"] for c in ok(client.get(f"/api/series/{series['id']}/characters"))["characters"]] == ["MAYA", "LEO"]


def test_the_api_needs_the_token_when_one_is_set(engine: Engine, tmp_path: Path) -> None:
    token = "s3cret-token"
    config = ServerConfig(host="0.0.0.0", token=token, data_dir=tmp_path / "data")
    with TestClient(create_app(config, engine=engine), base_url="http://127.0.0.1") as http:
        refused(http.get("/api/series"), 401, "unauthorised")
        refused(http.get("/api/openapi.json"), 401, "unauthorised")
        assert http.get("/api/series", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert http.post(f"/api/series?token={token}", json={"name": "ok"}).status_code == 201


def test_the_studio_endpoints_check_scripts_voices_previews_and_playback(client: TestClient, engine: Engine) -> None:
    checked = ok(client.post("/api/script/check", json={"text": "MAYA: Hi.\n\nLEO: Hello ^\nMAYA: Fine."}))
    assert [(ln["speaker"], ln["text"], ln["source_line"]) for ln in checked["lines"]] == [
        ("MAYA", "Hi.", 1), ("LEO", "Hello ^", 3), ("MAYA", "Fine.", 4),
    ]
    refused(client.post("/api/script/check", json={"text": "MAYA: ok\nLEO: " + "x" * 1200}), 400, "bad_script", "line 2:")
    refused(client.post("/api/script/check", json={"text": 3}), 400, "bad_script", "'text'")
    series_id, _, (scene_id, _) = make_episode(client)
    leo = ok(client.post(f"/api/series/{series_id}/characters", json={"name": "ZARA"}), 201)
    changed = ok(client.patch(f"/api/characters/{leo['id']}/voice", json={"variant": "m3", "pitch": 30}))
    assert changed["spec"]["voice"]["variant"] == "m3" and changed["spec"]["voice"]["pitch"] == 30
    assert changed["spec"]["look"] == leo["spec"]["look"]
    refused(client.patch(f"/api/characters/{leo['id']}/voice", json={"variant": "zz"}), 400, "bad_character", "variant")
    # A natural voice, its speed, a clear error for an unknown one, and back to espeak-ng.
    natural = ok(client.patch(f"/api/characters/{leo['id']}/voice", json={"backend": "kokoro", "voice_id": "bf_emma", "speed": 1.1}))
    assert natural["spec"]["voice"].items() >= {"backend": "kokoro", "voice_id": "bf_emma", "speed": 1.1, "variant": "m3"}.items()
    refused(client.patch(f"/api/characters/{leo['id']}/voice", json={"voice_id": "xx_nobody"}), 400, "bad_character", "xx_nobody")
    refused(client.patch(f"/api/characters/{leo['id']}/voice", json={"speed": 7}), 400, "bad_character", "speed")
    back = ok(client.patch(f"/api/characters/{leo['id']}/voice", json={"backend": "espeak"}))
    assert back["spec"]["voice"]["backend"] == "espeak" and not back["spec"]["voice"].get("voice_id")
    # The studio's "Add character" form: a Mandarin natural voice, or an espeak-ng variant over an
    # auto-cast natural voice.
    mei = ok(client.post(f"/api/series/{series_id}/characters", json={"name": "MEI", "voice": {"backend": "kokoro", "voice_id": "zf_xiaoxiao", "language": "cmn"}}), 201)
    assert mei["spec"]["voice"].items() >= {"backend": "kokoro", "voice_id": "zf_xiaoxiao", "language": "cmn"}.items()
    omar = ok(client.post(f"/api/series/{series_id}/characters", json={"name": "OMAR", "voice": {"backend": "espeak", "variant": "m1"}}), 201)
    assert omar["spec"]["voice"]["variant"] == "m1" and not omar["spec"]["voice"].get("voice_id")
    # Recast from a cast file's line: the description decides look and voice, fields pin exactly.
    recast = ok(client.put(f"/api/characters/{leo['id']}/cast", json={"cast": "a white man, 60, glasses; hair_style=bald"}))
    look, voice = recast["spec"]["look"], recast["spec"]["voice"]
    assert look["hair_style"] == "bald" and look["accessory"] in ("glasses", "round_glasses")
    assert voice["variant"].startswith("m") and look != changed["spec"]["look"]
    refused(client.put(f"/api/characters/{leo['id']}/cast", json={"cast": "hair_style=mohawk"}), 400, "bad_cast", "hair_style")
    refused(client.put(f"/api/characters/{leo['id']}/cast", json={"cast": "eyes=green"}), 400, "bad_cast", "'eyes'")
    refused(client.put(f"/api/characters/{leo['id']}/cast", json={"cast": ""}), 400, "bad_cast", "one line")
    preview = client.get(f"/api/characters/{leo['id']}/preview.png")
    assert preview.status_code == 200 and preview.content[:8] == b"\x89PNG\r\n\x1a\n"
    kitchen = ok(client.post(f"/api/series/{series_id}/sets", json={"name": "Kitchen", "backdrop": "#00ff00"}), 201)
    still = np.asarray(Image.open(io.BytesIO(client.get(f"/api/sets/{kitchen['id']}/preview.png").content)))
    assert tuple(still[10, 10][:3]) == (0, 255, 0)
    refused(client.get("/api/takes/tk_00000000000000aa/media"), 404, "not_found", "take")
    # A recording take cannot be played back yet; a finished one plays as an MP4 of its frames.
    app: Any = client.app
    scene = LiveScene(cast=engine.cast, speech=engine.speech, synth_executor=engine.synth_executor)
    session = Session(engine=engine, config=app.state.config, scene=scene)
    session.recordings = app.state.recordings
    app.state.sessions.sessions[session.id] = session
    url = f"/api/sessions/{session.id}/record?secret={session.secret}"
    take = ok(client.post(url, json={"scene_id": scene_id}), 201)
    refused(client.get(f"/api/takes/{take['id']}/media"), 409, "not_ready", "still recording")
    ok(client.delete(url))
    refused(client.get(f"/api/takes/{take['id']}/media"), 409, "nothing_to_export", "no frames")


def test_an_offer_for_a_scene_names_what_is_wrong(client: TestClient) -> None:
    sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=fingerprint:sha-256 AA\r\n"
    refused(client.post("/offer", json={"sdp": sdp, "type": "offer", "scene_id": 7}), 400, "bad_offer", "'scene_id'")
    refused(client.post("/offer", json={"sdp": sdp, "type": "offer", "scene_id": "sc_00000000000000aa"}), 404, "not_found", "scene")
