"""Opening connections to the four servers, with failures sorted by kind.

No module opens its own connection: they all come through here, so every
"server down" and "wrong password" reads the same whichever phase hit it, and
the transient/terminal split that retries depend on is made in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import TerminalError, TransientError
from .settings import MilvusSettings, Neo4jSettings, PostgresSettings, RedisSettings

if TYPE_CHECKING:
    import neo4j
    import psycopg
    import redis as redis_lib
    from pymilvus import MilvusClient


def open_neo4j(settings: Neo4jSettings) -> "neo4j.Driver":
    """Return a driver whose connectivity and credentials were verified.

    Raises:
        TerminalError: the credentials were refused.
        TransientError: the server could not be reached.
    """
    import neo4j
    from neo4j import exceptions as neo4j_errors

    driver = neo4j.GraphDatabase.driver(
        settings.uri,
        auth=(settings.user, settings.password),
        connection_timeout=settings.connect_timeout,
        max_transaction_retry_time=settings.connect_timeout,
        notifications_min_severity="OFF",
    )
    try:
        driver.verify_connectivity()
    except neo4j_errors.AuthError as error:
        driver.close()
        raise TerminalError(
            f"Neo4j at {settings.uri} rejected the credentials of user {settings.user!r} "
            f"(wrong password?): {error.message}"
        ) from error
    except (neo4j_errors.ServiceUnavailable, neo4j_errors.SessionExpired, OSError) as error:
        driver.close()
        raise TransientError(f"Neo4j unreachable at {settings.uri}: {error}") from error
    except neo4j_errors.ClientError as error:
        driver.close()
        if error.code and "AuthenticationRateLimit" in error.code:
            raise TerminalError(
                f"Neo4j at {settings.uri} refuses logins for a while after repeated wrong "
                f"passwords for user {settings.user!r}; check the password and retry in a minute"
            ) from error
        raise TerminalError(f"Neo4j at {settings.uri} refused the connection: {error.message}") from error
    except neo4j_errors.ConfigurationError as error:
        driver.close()
        raise TerminalError(f"Neo4j connection settings are invalid: {error}") from error
    return driver


def open_milvus(settings: MilvusSettings) -> "MilvusClient":
    """Return a Milvus client that answered a version call.

    Raises:
        TerminalError: authentication was refused.
        TransientError: the server could not be reached in ``settings.timeout``.
    """
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    token = settings.token or (f"{settings.user}:{settings.password}" if settings.user else "")
    try:
        client = MilvusClient(uri=settings.uri, token=token, db_name=settings.db_name, timeout=settings.timeout)
        client.get_server_version()
    except MilvusException as error:
        text = str(error)
        if "auth" in text.lower() or "credential" in text.lower():
            raise TerminalError(f"Milvus at {settings.uri} refused the credentials: {text}") from error
        raise TransientError(f"Milvus unreachable at {settings.uri}: {text}") from error
    except Exception as error:  # grpc surfaces several unrelated types for "not there"
        raise TransientError(f"Milvus unreachable at {settings.uri}: {error}") from error
    return client


def open_postgres(settings: PostgresSettings, **options: Any) -> "psycopg.Connection[Any]":
    """Return a PostgreSQL connection.

    Raises:
        TerminalError: authentication failed or the database does not exist.
        TransientError: the server could not be reached.
    """
    import psycopg

    try:
        return psycopg.connect(
            host=settings.host,
            port=settings.port,
            user=settings.user,
            password=settings.password or None,
            dbname=settings.database,
            connect_timeout=settings.connect_timeout,
            sslmode=settings.sslmode,
            application_name="hybrid-migration",
            **options,
        )
    except psycopg.OperationalError as error:
        text = str(error).strip()
        where = f"PostgreSQL at {settings.host}:{settings.port}"
        if "password authentication failed" in text or "no password supplied" in text:
            raise TerminalError(
                f"{where} rejected the credentials of role {settings.user!r} (wrong password?)"
            ) from error
        if "does not exist" in text:
            raise TerminalError(f"{where}: {text}") from error
        raise TransientError(f"{where} unreachable: {text}") from error


def open_redis(settings: RedisSettings) -> "redis_lib.Redis":
    """Return a Redis client that answered PING.

    Raises:
        TerminalError: authentication was refused or required but not given.
        TransientError: the server could not be reached.
    """
    import redis as redis_lib

    client = redis_lib.Redis(
        host=settings.host,
        port=settings.port,
        db=settings.db,
        username=settings.username or None,
        password=settings.password or None,
        socket_connect_timeout=settings.connect_timeout,
        socket_timeout=max(settings.connect_timeout, 30.0),
        decode_responses=False,
    )
    where = f"Redis at {settings.host}:{settings.port}"
    try:
        client.ping()
    except redis_lib.AuthenticationError as error:
        client.close()
        raise TerminalError(f"{where} rejected the credentials (wrong password?): {error}") from error
    except redis_lib.ResponseError as error:
        client.close()
        if "NOAUTH" in str(error) or "WRONGPASS" in str(error):
            raise TerminalError(f"{where} requires a valid password: {error}") from error
        raise TerminalError(f"{where}: {error}") from error
    except (redis_lib.ConnectionError, redis_lib.TimeoutError) as error:
        client.close()
        raise TransientError(f"{where} unreachable: {error}") from error
    return client
