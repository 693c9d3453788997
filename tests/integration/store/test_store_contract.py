"""The Store contract, run on every store: add a factory to STORES to cover another database.

PostgreSQL runs on a throwaway cluster (`postgres_url`, tests/conftest.py): skipped when the
server binaries are missing, failed instead under CI=true.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import pathlib
from collections.abc import Callable, Iterator

import pytest
from builders import GiB, make_task, make_worker
from vahana.core import fairshare, models
from vahana.store import base, sql, sqlite
from vahana.store import batch as batches

P = models.TaskPhase
StoreFactory = Callable[[], sql.SqlStore]

# The numbered migrations the package ships: each is applied exactly once.
SHIPPED_MIGRATIONS = sorted(
    int(entry.name.split("_", 1)[0])
    for entry in (importlib.resources.files("vahana.store") / "migrations").iterdir()
    if entry.name.endswith(".sql")
)


def sqlite_factory(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> StoreFactory:
    """Opens (and reopens) one SQLite file."""
    return lambda: sqlite.SqliteStore(tmp_path / "state" / "vahana.db")


def postgres_factory(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> StoreFactory:
    """Opens (and reopens) one fresh database of the session's PostgreSQL cluster."""
    from vahana.store import postgres

    url = request.getfixturevalue("postgres_url")
    return lambda: postgres.PostgresStore(url)


STORES: dict[str, Callable[[pytest.FixtureRequest, pathlib.Path], StoreFactory]] = {
    "sqlite": sqlite_factory,
    "postgresql": postgres_factory,
}


@pytest.fixture(params=sorted(STORES))
def open_store(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[StoreFactory]:
    factory = STORES[request.param](request, tmp_path)
    opened: list[sql.SqlStore] = []

    def open_() -> sql.SqlStore:
        opened.append(factory())
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: StoreFactory) -> sql.SqlStore:
    return open_store()


def full_task(task_id: str = "t1", *, seq: int = 1, **fields) -> models.TaskRecord:
    spec = dataclasses.replace(
        make_task(f"name-{task_id}")
        .command("run.sh --flag")
        .priority(3)
        .deadline(1234.5)
        .timeout(60)
        .env(A="1")
        .cpu(1.5)
        .memory(2 * GiB)
        .gpus(1)
        .labels(zone="eu")
        .prefer(rack="r1")
        .spec(),
        input_files=(models.FileTransfer("s3://in", "in.txt"),),
        output_files=(models.FileTransfer("out.txt", "s3://out"),),
        experiment_id="exp-1",
    )
    record = models.TaskRecord(
        id=task_id,
        spec=spec,
        created_at=100.0,
        seq=seq,
        key=f"key-{task_id}",
        retry=models.RetryPolicy(2, 4, 0.5, 30.0),
        pool="gpu",
        namespace="team-a",
    )
    return dataclasses.replace(record, **fields)


def test_dependencies_read_back_equal_and_survive_updates(store: sql.SqlStore) -> None:
    spec = make_task("d").after("b", "c").after("sweep", any_end=True, same_index=True).spec()
    upstream = {"b": ("id-b",), "c": ("id-c",), "sweep": ("s0", "s1")}
    task = dataclasses.replace(full_task("d"), spec=spec, upstream=upstream)
    store.insert_tasks([task])
    assert store.get_task("d") == task
    store.update_tasks([dataclasses.replace(task, phase=P.UPSTREAM_FAILED, message="b failed")])
    ended = store.get_task("d")
    assert ended is not None and ended.upstream == upstream
    assert ended.phase == P.UPSTREAM_FAILED and ended.spec.depends_on == spec.depends_on


def simple(task_id: str, *, seq: int, **fields) -> models.TaskRecord:
    return make_task(task_id).record(task_id=task_id, seq=seq, **fields)


# -- tasks ---------------------------------------------------------------------------------
def test_inserted_task_reads_back_equal(store: sql.SqlStore) -> None:
    task = full_task()
    store.insert_tasks([task])
    assert store.get_task("t1") == task
    assert store.get_task("missing") is None


def test_update_writes_every_mutable_field(store: sql.SqlStore) -> None:
    task = full_task()
    store.insert_tasks([task])
    changed = dataclasses.replace(
        task,
        phase=P.FAILED,
        attempt=3,
        worker_id="w9",
        exit_code=2,
        message="boom",
        output_tail="tail",
        output_log="s3://logs/kept/t1/attempt-3.log",
        started_at=110.0,
        finished_at=120.0,
        assigned_at=105.0,
        task_failures=2,
        infra_failures=1,
        not_before=130.0,
        cancel_requested=True,
    )
    store.update_tasks([changed])
    assert store.get_task("t1") == changed


def test_update_does_not_change_the_immutable_part(store: sql.SqlStore) -> None:
    task = full_task()
    store.insert_tasks([task])
    other_spec = make_task("renamed").spec()
    store.update_tasks([dataclasses.replace(task, spec=other_spec, seq=99, key="other")])
    assert store.get_task("t1").spec == task.spec
    assert (store.get_task("t1").seq, store.get_task("t1").key) == (1, "key-t1")


def test_list_tasks_filters_and_orders_by_seq(store: sql.SqlStore) -> None:
    store.insert_tasks(
        [
            simple("c", seq=3, phase=P.RUNNING, namespace="ns1"),
            simple("a", seq=1, namespace="ns1"),
            simple("b", seq=2, namespace="ns2"),
            simple("d", seq=4, phase=P.COMPLETED, namespace="ns1"),
        ]
    )
    ids = lambda tasks: [t.id for t in tasks]  # noqa: E731
    assert ids(store.list_tasks()) == ["a", "b", "c", "d"]
    assert ids(store.list_tasks(phase=P.PENDING)) == ["a", "b"]
    assert ids(store.list_tasks(namespace="ns1")) == ["a", "c", "d"]
    assert ids(store.list_tasks(namespace="")) == ["a", "b", "c", "d"]
    assert ids(store.list_tasks(ids=["d", "b", "zz"])) == ["b", "d"]
    assert ids(store.list_tasks(phase=P.PENDING, namespace="ns1")) == ["a"]
    assert ids(store.list_tasks(limit=2)) == ["a", "b"]


def test_page_tasks_filters_by_phase_pool_and_name_newest_first(store: sql.SqlStore) -> None:
    store.insert_tasks(
        [
            simple("align-1", seq=1, pool="gpu"),
            simple("align-2", seq=2, phase=P.RUNNING, pool="gpu"),
            simple("Align-3", seq=3, phase=P.COMPLETED),
            simple("sort-4", seq=4, phase=P.FAILED, pool="gpu"),
        ]
    )

    def names(**query) -> tuple[list[str], int]:
        page = store.page_tasks(base.TaskQuery(**query))
        return [t.spec.name for t in page.tasks], page.total

    assert names() == (["sort-4", "Align-3", "align-2", "align-1"], 4)
    assert names(phases=(P.PENDING, P.RUNNING)) == (["align-2", "align-1"], 2)
    assert names(pool="gpu", search="ALIGN") == (["align-2", "align-1"], 2)
    assert names(pool="") == (["Align-3"], 1)
    assert names(search="sort-4") == (["sort-4"], 1)  # a whole id matches too
    assert names(offset=1, limit=2) == (["Align-3", "align-2"], 4)


def test_page_tasks_search_takes_like_wildcards_literally(store: sql.SqlStore) -> None:
    store.insert_tasks(
        [simple("a_b", seq=1), simple("axb", seq=2), simple("100%", seq=3), simple("1000", seq=4)]
    )
    found = store.page_tasks(base.TaskQuery(search="a_b")).tasks
    assert [t.id for t in found] == ["a_b"]
    assert [t.id for t in store.page_tasks(base.TaskQuery(search="0%")).tasks] == ["100%"]


def test_count_tasks_by_phase(store: sql.SqlStore) -> None:
    store.insert_tasks([simple("a", seq=1), simple("b", seq=2, phase=P.FAILED), simple("c", seq=3)])
    assert store.count_tasks_by_phase() == {P.PENDING: 2, P.FAILED: 1}


def test_find_tasks_by_name(store: sql.SqlStore) -> None:
    store.insert_tasks(
        [
            make_task("same").record(task_id="x2", seq=2),
            make_task("same").record(task_id="x1", seq=1),
            make_task("other").record(task_id="y", seq=3),
        ]
    )
    assert [t.id for t in store.find_tasks_by_name("same")] == ["x1", "x2"]
    assert store.find_tasks_by_name("nobody") == []


def test_find_array_instances_by_the_arrays_name(store: sql.SqlStore) -> None:
    store.insert_tasks(
        [
            make_task("sw_p[1]").record(task_id="a1", seq=2),
            make_task("sw_p[0]").record(task_id="a0", seq=1),
            make_task("swxp[0]").record(task_id="like", seq=3),  # _ is no wildcard here
            make_task("sw_p").record(task_id="plain", seq=4),
        ]
    )
    assert [t.id for t in store.find_array_instances("sw_p")] == ["a0", "a1"]
    assert store.find_array_instances("nobody") == []


def test_find_task_ids_by_keys_ignores_empty_keys(store: sql.SqlStore) -> None:
    store.insert_tasks(
        [
            simple("a", seq=1, key="k-a"),
            simple("b", seq=2, key="k-b"),
            simple("c", seq=3),
        ]
    )
    assert store.find_task_ids_by_keys(["k-a", "", "k-b", "k-none"]) == {"k-a": "a", "k-b": "b"}
    assert store.find_task_ids_by_keys([]) == {}


def test_many_keys_are_looked_up_in_chunks(store: sql.SqlStore) -> None:
    store.insert_tasks([simple(f"t{i}", seq=i, key=f"k{i}") for i in range(1200)])
    found = store.find_task_ids_by_keys([f"k{i}" for i in range(1200)])
    assert len(found) == 1200 and found["k1199"] == "t1199"


def test_key_is_unique_but_empty_keys_are_not(store: sql.SqlStore) -> None:
    store.insert_tasks([simple("a", seq=1), simple("b", seq=2), simple("c", seq=3, key="k")])
    with pytest.raises(Exception) as raised:
        store.insert_tasks([simple("d", seq=4, key="k")])
    # DB-API: every driver's unique violation is (a subclass of) its IntegrityError.
    assert "IntegrityError" in [kind.__name__ for kind in type(raised.value).__mro__]
    assert store.get_task("d") is None


def test_load_unfinished_tasks(store: sql.SqlStore) -> None:
    store.insert_tasks([simple(p.value, seq=i, phase=p) for i, p in enumerate(P, start=1)])
    assert [t.phase for t in store.load_unfinished_tasks()] == [P.PENDING, P.ASSIGNED, P.RUNNING]


def test_max_seq(store: sql.SqlStore) -> None:
    assert store.max_seq() == 0
    store.insert_tasks([simple("a", seq=7), simple("b", seq=3)])
    assert store.max_seq() == 7


# -- attempts ------------------------------------------------------------------------------
def test_attempts_upsert_by_task_and_number(store: sql.SqlStore) -> None:
    first = models.AttemptRecord("t", 1, "w1", assigned_at=10.0)
    second = models.AttemptRecord("t", 2, "w2", assigned_at=20.0)
    store.save_attempts([second, first, models.AttemptRecord("other", 1, "w1", 5.0)])
    ended = dataclasses.replace(
        first,
        phase=P.FAILED,
        started_at=11.0,
        finished_at=12.0,
        exit_code=1,
        failure_kind=models.FailureKind.INFRASTRUCTURE,
        message="lost",
    )
    store.save_attempts([ended])
    assert store.list_attempts("t") == [ended, second]
    assert store.list_attempts("none") == []


# -- workers -------------------------------------------------------------------------------
def test_workers_save_update_and_delete(store: sql.SqlStore) -> None:
    worker = (
        make_worker("w1")
        .cpu(4)
        .memory(GiB)
        .gpus(1)
        .labels(zone="eu")
        .slots(2)
        .pool("p")
        .allocation_ends_at(500.0)
        .worker(
            now=10.0, hostname="h", experiment_id="e", compute_resource_id="c", leases={"t1": 2}
        )
    )
    store.save_workers([worker, make_worker("w2").worker()])
    assert {w.id: w for w in store.load_workers()}["w1"] == worker
    busy = dataclasses.replace(worker, state=models.WorkerState.BUSY, last_seen=20.0, leases={})
    store.save_workers([busy])
    assert {w.id: w for w in store.load_workers()}["w1"] == busy
    store.delete_workers(["w1", "never-there"])
    assert [w.id for w in store.load_workers()] == ["w2"]


# -- queue usage ---------------------------------------------------------------------------
def test_queue_usage_saves_upserts_by_queue_and_reads_back_equal(
    open_store: StoreFactory,
) -> None:
    store = open_store()
    assert store.load_queue_usage() == []
    busy = fairshare.SavedUsage("team-a", 123_456.789012345, 1_700_000_000.125)
    store.save_queue_usage([busy, fairshare.SavedUsage("b", 0.0, 10.0)])
    later = fairshare.SavedUsage("team-a", 98_765.4321, 1_700_000_030.5)
    store.save_queue_usage([later])
    assert store.load_queue_usage() == [fairshare.SavedUsage("b", 0.0, 10.0), later]
    store.close()
    # The floats come back exactly (DOUBLE PRECISION on both), and the rows outlive the store.
    assert open_store().load_queue_usage() == [fairshare.SavedUsage("b", 0.0, 10.0), later]


def test_queue_usage_is_written_by_a_batch_with_its_other_rows(store: sql.SqlStore) -> None:
    row = fairshare.SavedUsage("q", 5.0, 1.0)
    with pytest.raises(RuntimeError), store.transaction():
        batches.write(store, batches.Batch(usage={"q": row}))
        raise RuntimeError("the rest of the group failed")
    assert store.load_queue_usage() == []
    batches.write(store, batches.Batch(inserted={"a": simple("a", seq=1)}, usage={"q": row}))
    assert store.load_queue_usage() == [row] and store.get_task("a") is not None


# -- transactions --------------------------------------------------------------------------
def test_exception_in_a_transaction_rolls_back_every_write(store: sql.SqlStore) -> None:
    store.insert_tasks([simple("kept", seq=1)])
    with pytest.raises(RuntimeError), store.transaction():
        store.insert_tasks([simple("new", seq=2)])
        store.update_tasks([simple("kept", seq=1, phase=P.RUNNING)])
        store.save_workers([make_worker("w").worker()])
        raise RuntimeError("decided otherwise")
    assert store.get_task("new") is None
    assert store.get_task("kept").phase == P.PENDING
    assert store.load_workers() == []


def test_nested_transactions_join_the_outer_one(store: sql.SqlStore) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        with store.transaction():
            store.insert_tasks([simple("inner", seq=1)])
        # The inner block ended without committing: the outer failure undoes it too.
        raise RuntimeError
    assert store.get_task("inner") is None
    with store.transaction():
        with store.transaction():
            store.insert_tasks([simple("inner", seq=1)])
        store.insert_tasks([simple("outer", seq=2)])
    assert [t.id for t in store.list_tasks()] == ["inner", "outer"]


def test_store_is_usable_after_a_rollback(store: sql.SqlStore) -> None:
    with pytest.raises(ValueError), store.transaction():
        raise ValueError
    store.insert_tasks([simple("a", seq=1)])
    assert store.get_task("a") is not None


def test_committed_writes_are_seen_by_another_connection(open_store: StoreFactory) -> None:
    writer, reader = open_store(), open_store()
    with pytest.raises(RuntimeError), writer.transaction():
        writer.insert_tasks([simple("rolled-back", seq=1)])
        raise RuntimeError
    writer.insert_tasks([simple("a", seq=2)])
    assert [t.id for t in reader.list_tasks()] == ["a"]


# -- migrations and durability -------------------------------------------------------------
def test_migrations_are_idempotent(store: sql.SqlStore) -> None:
    store.insert_tasks([simple("a", seq=1)])
    store.migrate()
    store.migrate()
    assert store.get_task("a") is not None
    versions = store._rows("SELECT version FROM schema_migrations ORDER BY version")
    assert [row["version"] for row in versions] == SHIPPED_MIGRATIONS


def test_reopened_store_sees_the_data(open_store: StoreFactory) -> None:
    first = open_store()
    first.insert_tasks([full_task("t1"), full_task("t2", seq=2, phase=P.COMPLETED)])
    first.save_attempts([models.AttemptRecord("t1", 1, "w1", 10.0)])
    first.save_workers([make_worker("w1").cpu(2).worker()])
    first.close()
    again = open_store()
    assert again.get_task("t1") == full_task("t1")
    assert [t.id for t in again.load_unfinished_tasks()] == ["t1"]
    assert again.list_attempts("t1") == [models.AttemptRecord("t1", 1, "w1", 10.0)]
    assert [w.id for w in again.load_workers()] == ["w1"]
    assert again.max_seq() == 2


def test_in_memory_sqlite_store_works() -> None:
    store = sqlite.SqliteStore(":memory:")
    store.insert_tasks([simple("a", seq=1)])
    assert store.get_task("a") is not None
    store.close()
