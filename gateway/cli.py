"""citygw: run the whole system, train, manage the database, list services, chat from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys

from channels.http import PrivateAccessLogger
from gateway import cli_messaging, cli_staff
from gateway.config import REPO_ROOT, Settings, get_settings
from gateway.logs import setup_logging

log = logging.getLogger("citygw")


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.db.migrate import upgrade

    if args.action in ("upgrade", "init"):
        upgrade(settings.database_url)
        print("database schema is up to date")
    if args.action in ("seed", "init"):
        import time

        from gateway.db.people import DEMO_RESIDENTS
        from gateway.db.seed import seed, seed_population
        from intents.city.pack import load_pack

        pack = load_pack(settings.city_pack)
        added = seed(settings.database_url, pack)
        print(f"seeded the city data: {added} new rows")
        # `run` calls this with only an action: the demo default population then.
        residents = getattr(args, "residents", None)
        residents = DEMO_RESIDENTS if residents is None else residents
        started = time.perf_counter()
        people = seed_population(settings.database_url, pack, residents)
        took = time.perf_counter() - started
        print(
            f"demo population of {residents} residents: "
            + ", ".join(f"+{n} {kind}" for kind, n in people.items())
            + f" ({took:.1f} s)"
        )
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.rasa_env import train
    from intents import rasa_project

    if rasa_project.main(["--check"]) != 0:
        print("generated Rasa files are stale: run `citygw generate` first", file=sys.stderr)
        return 1
    print(train(settings, force=args.force))
    return 0


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from intents import rasa_project

    return rasa_project.main(["--check"] if args.check else [])


def cmd_services(args: argparse.Namespace, settings: Settings) -> int:
    from intents.services import catalogue

    cat = catalogue()
    rows = [
        {"id": s.id, "name": s.name, "category": cat.family(s.family).name, "family": s.family, "intent": s.intent}
        for s in cat.services
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        for row in rows:
            print(f"{row['id']:<32} {row['category']:<8} {row['name']}")
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from aiohttp import web

    from gateway import rasa_env
    from gateway.app import create_app
    from gateway.demo import exposure_problem, payment_env, start_local_providers

    problem = exposure_problem(settings)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    cmd_db(argparse.Namespace(action="init"), settings)
    logs = REPO_ROOT / "var" / "log"
    children: list[subprocess.Popen] = []
    try:
        settings, children = start_local_providers(settings, logs)
        if not args.no_rasa:
            model = rasa_env.train(settings)
            rasa_port = int(settings.rasa_url.rsplit(":", 1)[1].split("/")[0])
            actions = rasa_env.start_actions(settings.action_port, logs / "actions.log", payment_env(settings))
            children.append(actions)
            rasa = rasa_env.start_rasa(settings, model, rasa_port, settings.action_port, logs / "rasa.log")
            children.append(rasa)
            print("starting the action server and Rasa (about 20 s)…", flush=True)
            rasa_env.wait_http(f"http://127.0.0.1:{settings.action_port}/health", 60, actions, logs / "actions.log")
            rasa_env.wait_http(f"{settings.rasa_url}/status", 180, rasa, logs / "rasa.log")
        print(f"web chat: http://{settings.host}:{settings.port}/   (Ctrl-C stops everything)", flush=True)
        print('SMS and WeChat: citygw phone sms "12路到哪了" / citygw phone wechat "预约医院"', flush=True)
        web.run_app(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            print=None,
            access_log_class=PrivateAccessLogger,
        )
    except rasa_env.SetupError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        for child in reversed(children):
            rasa_env.stop(child)
    return 0


def cmd_actions(args: argparse.Namespace, settings: Settings) -> int:
    os.environ["SANIC_HOST"] = "127.0.0.1"
    os.execv(sys.executable, [sys.executable, "-m", "gateway.action_server", "-p", str(settings.action_port)])


def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    import aiohttp

    from intents.runtime import pack

    async def loop() -> None:
        url = f"{args.url.rstrip('/')}/api/webchat/messages"
        async with aiohttp.ClientSession() as http:
            session = args.session
            if not session:  # only the server mints sessions
                async with http.post(f"{args.url.rstrip('/')}/api/webchat/sessions") as response:
                    session = (await response.json())["session"]
            print(f"{pack().city.sms_signature}助手（输入 /quit 退出）")
            while True:
                try:
                    text = await asyncio.to_thread(input, "您：")
                except EOFError:
                    return
                if text.strip() == "/quit":
                    return
                async with http.post(url, json={"session": session, "text": text}) as response:
                    body = await response.json()
                if response.status != 200:
                    print(f"  ！{body.get('error')}")
                    continue
                for reply in body["replies"]:
                    print(f"助手：{reply['text']}")
                    for number, b in enumerate(reply["buttons"], start=1):
                        print(f"  [{number}] {b['title']}    （输入：{b['payload']}）")

    asyncio.run(loop())
    return 0


def cmd_rasa_env(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.rasa_env import SetupError, ensure_rasa_env

    try:
        print(ensure_rasa_env(settings))
    except SetupError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="citygw", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="migrate, seed, train if needed, start Rasa, actions and the gateway")
    run.add_argument("--no-rasa", action="store_true", help="do not start Rasa (use an external CITYGW_RASA_URL)")
    run.set_defaults(func=cmd_run)
    db = sub.add_parser("db", help="database schema and demo data")
    db.add_argument("action", choices=["upgrade", "seed", "init"])
    db.add_argument("--residents", type=int, help="demo residents to seed (default 2000; 250000 is the whole city)")
    db.set_defaults(func=cmd_db)
    train = sub.add_parser("train", help="train the Rasa model if its inputs changed")
    train.add_argument("--force", action="store_true")
    train.set_defaults(func=cmd_train)
    gen = sub.add_parser("generate", help="regenerate the Rasa data from the catalogue and city data")
    gen.add_argument("--check", action="store_true", help="only report stale files")
    gen.set_defaults(func=cmd_generate)
    services = sub.add_parser("services", help="list the service catalogue")
    services.add_argument("--json", action="store_true")
    services.set_defaults(func=cmd_services)
    chat = sub.add_parser("chat", help="talk to the running gateway from this terminal")
    chat.add_argument("--url", default="http://127.0.0.1:8080")
    chat.add_argument("--session")
    chat.set_defaults(func=cmd_chat)
    sub.add_parser("actions", help="run the action server in the foreground").set_defaults(func=cmd_actions)
    sub.add_parser("rasa-env", help="build the Rasa virtualenv if missing").set_defaults(func=cmd_rasa_env)
    cli_messaging.register(sub)
    cli_staff.register(sub)
    args = parser.parse_args(argv)
    settings = get_settings()
    setup_logging(settings.log_level, settings.log_format)
    return args.func(args, settings)


if __name__ == "__main__":
    raise SystemExit(main())
