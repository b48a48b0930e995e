"""The membership handshake and record MACs, driven without sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deltasync.core.errors import ConfigError, RemoteError
from deltasync.net import auth
from deltasync.net.auth import (
    AuthError,
    Handshake,
    HandshakeMisuse,
    HandshakeProof,
    HandshakeRole,
    Hello,
    decode_message,
    encode_message,
)
from deltasync.net.framing import encode_frame

SECRET = b"s" * 32


def dialer(node_id: int = 1, peer: int = 2, secret: bytes = SECRET, cluster: str = "c") -> Handshake:
    return Handshake(
        HandshakeRole.DIALER, cluster_id=cluster, node_id=node_id, secret=secret, known_peer_ids=(peer,)
    )


def acceptor(
    node_id: int = 2, known: tuple[int, ...] = (1, 3), secret: bytes = SECRET, cluster: str = "c"
) -> Handshake:
    return Handshake(
        HandshakeRole.ACCEPTOR, cluster_id=cluster, node_id=node_id, secret=secret, known_peer_ids=known
    )


def run(d: Handshake, a: Handshake) -> tuple[list[bytes], list[bytes]]:
    """Drive both sides to the end; return what each one sent."""
    from_dialer = d.start()
    assert a.start() == []
    from_acceptor = a.receive(from_dialer[0])
    assert d.receive(from_acceptor[0]) == []
    proof = d.receive(from_acceptor[1])
    assert a.receive(proof[0]) == []
    return from_dialer + proof, from_acceptor


def test_good_handshake_gives_matching_sessions() -> None:
    d, a = dialer(), acceptor()
    run(d, a)
    assert d.done and a.done
    assert d.session is not None and a.session is not None
    assert (d.session.peer_id, a.session.peer_id) == (2, 1)
    assert d.session.send_key == a.session.receive_key
    assert d.session.receive_key == a.session.send_key
    assert d.session.send_key != d.session.receive_key
    sealer, opener = d.session.sealer(), a.session.opener()
    for body in (b"one", b"", b"three" * 100):
        assert opener.open(sealer.seal(body)) == body


def test_two_handshakes_never_share_keys() -> None:
    first, second = (dialer(), acceptor()), (dialer(), acceptor())
    run(*first)
    run(*second)
    assert first[0].session is not None and second[0].session is not None
    assert first[0].session.send_key != second[0].session.send_key


def test_wrong_secret_refused_by_both_sides() -> None:
    d, a = dialer(), acceptor(secret=b"x" * 32)
    hello = d.start()[0]
    a.start()
    reply = a.receive(hello)
    d.receive(reply[0])
    with pytest.raises(AuthError, match="bad proof"):
        d.receive(reply[1])  # the dialer refuses an acceptor that does not know our secret


def dialer_proof_with(secret: bytes) -> tuple[Handshake, bytes]:
    """An acceptor mid-handshake and a dialer PROOF computed with ``secret``."""
    genuine = acceptor()
    genuine.start()
    hello = dialer().start()[0]
    reply = genuine.receive(hello)
    transcript = encode_frame(hello) + encode_frame(reply[0])
    return genuine, encode_message(HandshakeProof(auth._mac(secret, auth._LABEL_PROOF_DIALER, transcript)))


def test_acceptor_refuses_a_dialer_proof_made_with_another_secret() -> None:
    a, forged = dialer_proof_with(b"x" * 32)
    with pytest.raises(AuthError, match="bad proof"):
        a.receive(forged)
    a, genuine = dialer_proof_with(SECRET)  # the same construction with the right secret passes
    assert a.receive(genuine) == [] and a.done


def test_unknown_node_id_refused_before_anything_is_revealed() -> None:
    d, a = dialer(node_id=9), acceptor(known=(1, 3))
    a.start()
    with pytest.raises(AuthError, match="unknown node id"):
        a.receive(d.start()[0])


def test_own_node_id_refused() -> None:
    d, a = dialer(node_id=2), acceptor(node_id=2, known=(1, 2))
    a.start()
    with pytest.raises(AuthError, match="unknown node id"):
        a.receive(d.start()[0])


def test_dialer_refuses_an_acceptor_with_another_id() -> None:
    d, impostor = dialer(peer=2), acceptor(node_id=3)
    impostor.start()
    reply = impostor.receive(d.start()[0])
    with pytest.raises(AuthError, match="unknown node id"):
        d.receive(reply[0])


def test_wrong_cluster_refused() -> None:
    d, a = dialer(cluster="one"), acceptor(cluster="two")
    a.start()
    with pytest.raises(AuthError, match="wrong cluster"):
        a.receive(d.start()[0])


def test_replayed_dialer_transcript_refused() -> None:
    d, a = dialer(), acceptor()
    recorded, _ = run(d, a)  # an eavesdropper kept the dialer's HELLO and PROOF
    fresh = acceptor()
    fresh.start()
    fresh.receive(recorded[0])  # the HELLO alone proves nothing ...
    with pytest.raises(AuthError, match="bad proof"):
        fresh.receive(recorded[1])  # ... and the old PROOF does not cover the new nonce


def test_replayed_acceptor_transcript_refused() -> None:
    d, a = dialer(), acceptor()
    _, recorded = run(d, a)
    fresh = dialer()
    fresh.start()
    fresh.receive(recorded[0])
    with pytest.raises(AuthError, match="bad proof"):
        fresh.receive(recorded[1])


def test_reflected_proof_refused() -> None:
    # a man in the middle hands the acceptor its own proof back as the dialer's
    d, a = dialer(), acceptor()
    a.start()
    reply = a.receive(d.start()[0])
    with pytest.raises(AuthError, match="bad proof"):
        a.receive(reply[1])


def test_reflected_hello_refused() -> None:
    d = dialer()
    hello = d.start()[0]
    with pytest.raises(AuthError, match="wrong role"):
        d.receive(hello)
    # an acceptor HELLO that echoes the dialer's nonce is refused too
    d2 = dialer()
    mine = decode_message(d2.start()[0])
    assert isinstance(mine, Hello)
    echo = encode_message(Hello(HandshakeRole.ACCEPTOR, 2, mine.nonce, "c"))
    with pytest.raises(AuthError, match="echoed"):
        d2.receive(echo)


def test_out_of_order_messages_fail_and_the_handshake_stays_failed() -> None:
    a = acceptor()
    a.start()
    with pytest.raises(AuthError, match="unexpected"):
        a.receive(encode_message(HandshakeProof(b"\x01" * 32)))
    with pytest.raises(HandshakeMisuse):
        a.receive(dialer().start()[0])


def test_tampered_replayed_and_reordered_records_fail() -> None:
    d, a = dialer(), acceptor()
    run(d, a)
    assert d.session is not None and a.session is not None
    sealer = d.session.sealer()
    first, second = sealer.seal(b"first"), sealer.seal(b"second")
    opener = a.session.opener()
    with pytest.raises(AuthError, match="bad record tag"):
        opener.open(second)  # reordered: sequence 0 expected
    opener = a.session.opener()
    tampered = first[:-1] + bytes([first[-1] ^ 1])
    with pytest.raises(AuthError, match="bad record tag"):
        opener.open(tampered)
    opener = a.session.opener()
    assert opener.open(first) == b"first"
    with pytest.raises(AuthError, match="bad record tag"):
        opener.open(first)  # replayed
    with pytest.raises(AuthError, match="shorter"):
        a.session.opener().open(b"short")
    # a record sealed for the other direction does not open either
    assert a.session.opener().open(d.session.sealer().seal(b"x")) == b"x"
    with pytest.raises(AuthError):
        d.session.opener().open(d.session.sealer().seal(b"x"))


@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_refused_with_auth_errors_only(data: bytes) -> None:
    a = acceptor()
    a.start()
    try:
        a.receive(data)
    except AuthError as error:
        assert isinstance(error, RemoteError)
        assert a.state == "failed"


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ConfigError):
        dialer(secret=b"short")
    with pytest.raises(ConfigError):
        dialer(cluster="")
    with pytest.raises(ConfigError):
        dialer(cluster="x" * 65)


def test_malformed_messages() -> None:
    good = encode_message(Hello(HandshakeRole.DIALER, 1, b"n" * 32, "c"))
    assert decode_message(good) == Hello(HandshakeRole.DIALER, 1, b"n" * 32, "c")
    for bad, reason in [
        (b"XXXX" + good[4:], "bad magic"),
        (good[:4] + b"\x09" + good[5:], "unsupported version"),
        (good[:5] + b"\x07" + good[6:], "unknown handshake message kind"),
        (good[:-1], "bad cluster id length"),
        (good + b"x", "bad cluster id length"),
        (good[:6] + b"\x05" + good[7:], "bad role"),
        (good[:20], "hello too short"),
        (good[:-1] + b"\xff", "not UTF-8"),
        (encode_message(HandshakeProof(b"p" * 32)) + b"!", "bad proof length"),
    ]:
        with pytest.raises(AuthError, match=reason):
            decode_message(bad)
