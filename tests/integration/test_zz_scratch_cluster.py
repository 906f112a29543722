from tests.fakes import FakeAnthropic, FakeSlack
from tests.integration.conftest import BotFactory
from tests.integration.test_mentions import answered, mention


async def test_scratch(make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic) -> None:
    bot = make_bot(REDIS_URL="redis://127.0.0.1:7101")
    await bot.start()
    claude.reply_text("Paris.")
    claude.reply_text("Still Paris.")
    e = mention(slack, "capital?")
    assert await bot.post_event(e) == 200
    await answered(slack, e["event"]["ts"], "Paris.")
    e2 = mention(slack, "again?", thread_ts=e["event"]["ts"])
    assert await bot.post_event(e2) == 200
    await answered(slack, e["event"]["ts"], "Still Paris.", count=2)
    await bot.stop()
    print(bot.output())
    assert "Error" not in bot.output() and "MOVED" not in bot.output() and "CROSSSLOT" not in bot.output()
