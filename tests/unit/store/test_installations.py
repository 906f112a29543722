"""InstallationRecords against a real Redis: the latest install wins, org-wide installs cover their teams, and
deletes forget exactly what they name."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from store import keys
from store.errors import CorruptRecord
from store.installations import FoundInstallation, InstallationRecords, Workspace
from tests.integration.redis_cluster import LocalCluster

TEAM = Workspace(None, "T1")
OTHER_TEAM = Workspace(None, "T2")
GRID_TEAM = Workspace("E1", "T3")
ORG = Workspace.of("E1", "T3", is_enterprise_install=True)


def installation(token: str, user_id: str = "U1", at: float = 100.0, **extra: Any) -> dict[str, Any]:
    """An installation record as the adapter would give it."""
    return {"bot_token": token, "user_id": user_id, "installed_at": at, **extra}


def bot(token: str, at: float = 100.0, **extra: Any) -> dict[str, Any]:
    """A bot record as the adapter would give it."""
    return {"bot_token": token, "installed_at": at, **extra}


async def install(records: InstallationRecords, workspace: Workspace, token: str, user_id: str, at: float) -> None:
    """Save an install with its bot, as the OAuth flow's completion does."""
    record = installation(token, user_id, at)
    await records.save_installation(workspace, record, installed_at=at, user_id=user_id, bot=bot(token, at))


async def test_an_install_is_found_by_its_team_and_by_nobody_else(redis: Redis) -> None:
    """The installation and bot saved for a team come back for that team, and another team finds nothing."""
    records = InstallationRecords(redis)
    await install(records, TEAM, "xoxb-1", "U1", 100.0)
    assert await records.find_installation(TEAM) == FoundInstallation(
        installation("xoxb-1", "U1", 100.0), bot("xoxb-1", 100.0)
    )
    assert await records.find_bot(TEAM) == bot("xoxb-1", 100.0)
    assert await records.find_installation(OTHER_TEAM) == FoundInstallation(None, None)
    assert await records.find_bot(OTHER_TEAM) is None


async def test_the_latest_install_wins_and_an_older_one_written_late_does_not(redis: Redis) -> None:
    """A newer install replaces the latest installation and bot; one with an older installed_at leaves them."""
    records = InstallationRecords(redis)
    await install(records, TEAM, "xoxb-1", "U1", 100.0)
    await install(records, TEAM, "xoxb-2", "U2", 200.0)
    await install(records, TEAM, "xoxb-old", "U1", 50.0)  # e.g. a slow redirect finishing after a newer one
    found = await records.find_installation(TEAM)
    assert found.installation == installation("xoxb-2", "U2", 200.0)
    assert found.bot == bot("xoxb-2", 200.0)
    assert (await records.find_installation(TEAM, "U1")).installation == installation("xoxb-1", "U1", 100.0)


async def test_each_users_latest_installation_is_kept(redis: Redis) -> None:
    """Per-user lookups find that user's latest installation; an unknown user finds none but still the bot."""
    records = InstallationRecords(redis)
    await install(records, TEAM, "xoxb-1", "U1", 100.0)
    await install(records, TEAM, "xoxb-2", "U2", 200.0)
    await install(records, TEAM, "xoxb-3", "U1", 300.0)
    assert (await records.find_installation(TEAM, "U1")).installation == installation("xoxb-3", "U1", 300.0)
    assert (await records.find_installation(TEAM, "U2")).installation == installation("xoxb-2", "U2", 200.0)
    assert await records.find_installation(TEAM, "U9") == FoundInstallation(None, bot("xoxb-3", 300.0))


async def test_an_org_wide_install_is_found_for_every_team_of_its_enterprise(redis: Redis) -> None:
    """An is_enterprise_install install is kept under its enterprise, found whatever team of the org asks, and
    apart from a workspace-level install of one of its teams."""
    records = InstallationRecords(redis)
    await install(records, ORG, "xoxb-org", "U1", 100.0)
    for team_id in ("T3", "T4", None):
        assert await records.find_bot(Workspace.of("E1", team_id, is_enterprise_install=True)) == bot("xoxb-org")
    assert await records.find_bot(Workspace.of("E1", None, is_enterprise_install=False)) == bot("xoxb-org")
    assert await records.find_bot(GRID_TEAM) is None
    assert await redis.keys("*") == ["agent:E1:installations"]


async def test_token_rotation_fields_are_kept_and_updated(redis: Redis) -> None:
    """A refreshed bot (same installed_at, new token, refresh token and expiry) replaces the stored one whole."""
    records = InstallationRecords(redis)
    first = bot("xoxe.xoxb-1", bot_refresh_token="xoxe-1-r", bot_token_expires_at=1_700_043_200)
    await records.save_bot(TEAM, first, installed_at=100.0, expires_at=1_700_043_200)
    assert await records.find_bot(TEAM) == first
    refreshed = bot("xoxe.xoxb-2", bot_refresh_token="xoxe-1-r2", bot_token_expires_at=1_700_086_400)
    await records.save_bot(TEAM, refreshed, installed_at=100.0, expires_at=1_700_086_400)
    assert await records.find_bot(TEAM) == refreshed
    assert await records.find_installation(TEAM) == FoundInstallation(None, refreshed)


async def test_a_rotating_bot_is_ordered_by_its_tokens_expiry(redis: Redis) -> None:
    """The bot whose token was issued last wins, whatever the install time it was saved with: a refresh saved back
    with an older installation's time is kept, a stale copy saved back later is not."""
    records = InstallationRecords(redis)
    await records.save_bot(TEAM, bot("xoxe.xoxb-1"), installed_at=200.0, expires_at=1_000)
    refreshed = bot("xoxe.xoxb-2", at=100.0)
    await records.save_installation(
        TEAM,
        installation("xoxe.xoxb-2", "U1", 100.0),
        installed_at=100.0,
        user_id="U1",
        bot=refreshed,
        bot_expires_at=2_000,
    )
    assert await records.find_bot(TEAM) == refreshed
    stale = bot("xoxe.xoxb-1", at=300.0)  # a copy read before the refresh, saved back after it
    await records.save_bot(TEAM, stale, installed_at=300.0, expires_at=1_000)
    assert await records.find_bot(TEAM) == refreshed
    assert (await records.find_installation(TEAM)).installation == installation("xoxe.xoxb-2", "U1", 100.0)


async def test_a_bot_without_token_expiry_is_ordered_by_install_time(redis: Redis) -> None:
    """Once rotation is turned off, a newer install's bot (no expiry) replaces a rotating one; an older one does not."""
    records = InstallationRecords(redis)
    await records.save_bot(TEAM, bot("xoxe.xoxb-1", at=100.0), installed_at=100.0, expires_at=5_000_000_000)
    await records.save_bot(TEAM, bot("xoxb-old", at=50.0), installed_at=50.0)
    assert await records.find_bot(TEAM) == bot("xoxe.xoxb-1", at=100.0)
    await records.save_bot(TEAM, bot("xoxb-2", at=200.0), installed_at=200.0)
    assert await records.find_bot(TEAM) == bot("xoxb-2", at=200.0)


async def test_deleting_one_users_installation_falls_back_to_the_others_latest(redis: Redis) -> None:
    """delete_installation with a user forgets that user's; the latest becomes the latest of the rest; the bot stays."""
    records = InstallationRecords(redis)
    await install(records, TEAM, "xoxb-1", "U1", 100.0)
    await install(records, TEAM, "xoxb-3", "U3", 150.0)
    await install(records, TEAM, "xoxb-2", "U2", 200.0)
    await records.delete_installation(TEAM, "U2")
    found = await records.find_installation(TEAM)
    assert found == FoundInstallation(installation("xoxb-3", "U3", 150.0), bot("xoxb-2", 200.0))
    assert (await records.find_installation(TEAM, "U2")).installation is None
    await records.delete_installation(TEAM, "U1")  # not the latest: the latest stays
    assert (await records.find_installation(TEAM)).installation == installation("xoxb-3", "U3", 150.0)
    await records.delete_installation(TEAM, "U3")
    assert await records.find_installation(TEAM) == FoundInstallation(None, bot("xoxb-2", 200.0))


async def test_deleting_every_installation_keeps_the_bot_and_other_teams(redis: Redis) -> None:
    """delete_installation without a user forgets all of the workspace's installations, not its bot, not others'."""
    records = InstallationRecords(redis)
    await install(records, TEAM, "xoxb-1", "U1", 100.0)
    await install(records, TEAM, "xoxb-2", "U2", 200.0)
    await install(records, OTHER_TEAM, "xoxb-9", "U9", 100.0)
    await records.delete_installation(TEAM)
    assert await records.find_installation(TEAM) == FoundInstallation(None, bot("xoxb-2", 200.0))
    assert (await records.find_installation(TEAM, "U1")).installation is None
    assert (await records.find_installation(OTHER_TEAM)).installation is not None


async def test_delete_bot_and_delete_all(redis: Redis) -> None:
    """delete_bot forgets only the bot; delete_all forgets everything of the workspace and nothing of another."""
    records = InstallationRecords(redis)
    await install(records, TEAM, "xoxb-1", "U1", 100.0)
    await install(records, OTHER_TEAM, "xoxb-9", "U9", 100.0)
    await records.delete_bot(TEAM)
    assert await records.find_installation(TEAM) == FoundInstallation(installation("xoxb-1", "U1", 100.0), None)
    await records.delete_all(TEAM)
    assert await redis.keys("*") == [keys.installations("T2")]


async def test_installations_have_no_ttl(redis: Redis) -> None:
    """An installation lasts until the app is uninstalled: its key never expires."""
    await install(InstallationRecords(redis), TEAM, "xoxb-1", "U1", 100.0)
    assert await redis.ttl(keys.installations("T1")) == -1


async def test_a_workspace_needs_an_id_and_a_malformed_record_is_reported(redis: Redis) -> None:
    """A lookup with neither team nor enterprise is refused; a stored value not written here raises CorruptRecord."""
    with pytest.raises(ValueError):
        await InstallationRecords(redis).find_bot(Workspace(None, None))
    await redis.hset(keys.installations("T1"), "bot", '{"at": 1}')
    with pytest.raises(CorruptRecord):
        await InstallationRecords(redis).find_bot(TEAM)


async def test_on_a_cluster_installs_are_saved_found_and_deleted(redis_cluster: LocalCluster) -> None:
    """On a three-master Redis Cluster each workspace's scripts run on its key's node."""
    client = RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    try:
        records = InstallationRecords(client)
        for workspace in (TEAM, OTHER_TEAM, ORG):
            await install(records, workspace, f"xoxb-{workspace.owner_id}", "U1", 100.0)
            await install(records, workspace, f"xoxb-{workspace.owner_id}-2", "U2", 200.0)
        await records.delete_installation(OTHER_TEAM, "U2")
        assert (await records.find_installation(OTHER_TEAM)).installation == installation("xoxb-T2", "U1", 100.0)
        assert await records.find_bot(ORG) == bot("xoxb-E1-2", 200.0)
        await records.delete_all(TEAM)
        assert await records.find_installation(TEAM) == FoundInstallation(None, None)
    finally:
        await client.aclose()


async def test_a_team_finds_its_own_bot_or_that_of_the_org_it_joined(redis: Redis) -> None:
    """A team's tasks know only the team: its own install's bot wins; without one, the org's it was seen using;
    a team that joined no org finds nothing."""
    records = InstallationRecords(redis)
    await install(records, ORG, "xoxb-org", "U1", 100.0)
    assert await records.find_team_bot("T3") is None  # not yet seen using the org's install

    await records.join_org("T3", "E1")
    await records.join_org("T4", "E1")

    found = await records.find_team_bot("T3")
    assert found is not None and (found.owner_id, found.bot) == ("E1", bot("xoxb-org", 100.0))
    assert await records.org_teams("E1") == ["T3", "T4"]
    await install(records, Workspace("E1", "T3"), "xoxb-own", "U1", 200.0)
    found = await records.find_team_bot("T3")
    assert found is not None and (found.owner_id, found.bot["bot_token"]) == ("T3", "xoxb-own")
    assert await records.find_team_bot("T9") is None


async def test_an_orgs_uninstall_keeps_the_list_of_its_teams_and_nothing_else(redis: Redis) -> None:
    """delete_all forgets the org's installs and bot but keeps which teams it served, for a reinstall within the
    grace period (the sweep deletes it after); a team's delete_all leaves nothing."""
    records = InstallationRecords(redis)
    await install(records, ORG, "xoxb-org", "U1", 100.0)
    await records.join_org("T3", "E1")

    await records.delete_all(ORG)

    assert await records.find_installation(ORG) == FoundInstallation(None, None)
    assert await records.org_teams("E1") == ["T3"]
    assert await records.find_team_bot("T3") is None
    await install(records, TEAM, "xoxb-1", "U1", 100.0)
    await records.delete_all(TEAM)
    assert not await redis.exists(keys.installations("T1"))
