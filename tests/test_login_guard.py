"""The login limit (studio/ui/login_guard.py) on a clock the test moves: failures per address and per user
name, the lockout refusing even the right password, doubling, other clients unaffected, the lockout logged."""

import asyncio
import logging

import pytest

from studio.ui.login_guard import LockedOut, LoginGuard


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture()
def guard():
    clock = Clock()
    g = LoginGuard([("alice", "right-pw")], max_failures=10, lockout_s=300, slow_after=5, delay_s=0.5, clock=clock)
    g.test_clock = clock
    return g


def test_thirty_wrong_then_right_from_one_client_is_refused_until_the_lockout_ends(guard, caplog):
    outcomes = []
    with caplog.at_level(logging.WARNING, logger="studio.login"):
        for _ in range(30):
            try:
                outcomes.append(guard.attempt("10.0.0.9", "alice", "guess")[0])
            except LockedOut:
                outcomes.append("locked out")
    assert outcomes == [False] * 10 + ["locked out"] * 20     # refused unchecked once locked
    with pytest.raises(LockedOut, match="Too many failed logins from this address.*5 minutes"):
        guard.attempt("10.0.0.9", "alice", "right-pw")     # the right password, during the lockout
    assert guard.attempt("10.0.0.7", "alice", "right-pw") == (True, 0.0)   # another client is not affected
    assert any("locked out for address '10.0.0.9'" in r.getMessage() for r in caplog.records)
    guard.test_clock.now += 301
    assert guard.attempt("10.0.0.9", "alice", "right-pw") == (True, 0.0)   # after the lockout it works


def test_failures_are_slowed_down_before_the_lockout(guard):
    delays = [guard.attempt("10.0.0.9", "alice", "guess")[1] for _ in range(9)]
    assert delays[:5] == [0.0] * 5 and set(delays[5:]) == {0.5}


def test_the_second_lockout_lasts_twice_as_long(guard):
    for _ in range(10):
        guard.attempt("10.0.0.9", "bob", "x")
    guard.test_clock.now += 301
    for _ in range(10):
        guard.attempt("10.0.0.9", "bob", "x")
    guard.test_clock.now += 301
    with pytest.raises(LockedOut):
        guard.attempt("10.0.0.9", "alice", "right-pw")
    guard.test_clock.now += 300
    assert guard.attempt("10.0.0.9", "alice", "right-pw")[0]


def test_a_user_name_guessed_from_many_addresses_is_locked(guard):
    for i in range(50):       # five failures each from ten addresses: no address reaches its own limit
        guard.attempt(f"10.1.{i // 5}.1", "alice", "guess")
    with pytest.raises(LockedOut, match="for the user name 'alice'"):
        guard.attempt("10.9.9.9", "alice", "right-pw")
    assert guard.attempt("10.9.9.9", "carol", "x") == (False, 0.0)   # unknown names lock nobody out


def test_success_clears_the_count(guard):
    for _ in range(9):
        guard.attempt("10.0.0.9", "alice", "guess")
    assert guard.attempt("10.0.0.9", "alice", "right-pw")[0]
    for _ in range(9):
        assert guard.attempt("10.0.0.9", "alice", "guess")[0] is False   # nine more: still not locked


def test_as_gradio_auth_a_lockout_is_http_429_with_the_sentence(guard):
    import inspect

    from fastapi import HTTPException

    # Gradio awaits auth only for a coroutine function; anything else returning an awaitable logs anyone in.
    assert inspect.iscoroutinefunction(guard.check)
    guard.delay_s = 0.0
    for _ in range(10):
        assert asyncio.run(guard.check("alice", "guess")) is False
    with pytest.raises(HTTPException) as e:
        asyncio.run(guard.check("alice", "right-pw"))
    assert e.value.status_code == 429 and "Too many failed logins" in e.value.detail
    assert int(e.value.headers["Retry-After"]) > 0


def test_a_strangers_guesses_on_the_name_do_not_lock_the_owner_out(guard):
    assert guard.attempt("10.0.0.1", "alice", "right-pw")[0]          # the owner logged in from here before
    for i in range(100):       # a guess spread over twenty addresses: the name is locked for strangers
        try:
            guard.attempt(f"10.2.{i // 5}.1", "alice", "guess")
        except LockedOut:
            pass
    with pytest.raises(LockedOut, match="for the user name 'alice'"):
        guard.attempt("10.9.9.9", "alice", "right-pw")
    assert guard.attempt("10.0.0.1", "alice", "right-pw") == (True, 0.0)   # the owner's address still logs in


def test_unknown_names_are_counted_like_known_ones(guard):
    """A name that never locks would tell a guesser which names exist."""
    outcomes = {}
    for name in ("alice", "mallory"):
        for i in range(60):
            try:
                guard.attempt(f"10.3.{i // 5}.{len(name)}", name, "guess")
            except LockedOut as e:
                outcomes[name] = str(e).replace(name, "NAME")
                break
    assert outcomes["alice"] == outcomes["mallory"] and "for the user name" in outcomes["alice"]
