"""`kubectl videojob`: the daily loop of a VideoJob user in one command (a kubectl plugin).

    kubectl videojob submit --input main=./talk.mp4 --text "Launch day" --output s3://media/out/talk/ --watch
    kubectl videojob submit -f job.yaml --watch     # local paths in spec.inputs[].uri are uploaded first
    kubectl videojob watch NAME                     # live: phase, queue position, progress, ETA, node; artifacts
    kubectl videojob logs NAME                      # the transcoder's output, followed while it runs
    kubectl videojob artifacts NAME [--url] [--download DIR]
    kubectl videojob cancel NAME | retry NAME | list [-A]

Every command takes -n/--namespace, --context and --kubeconfig (as kubectl does; the context's namespace is the
default) and -o json|yaml (`submit`: --format, since its --output is where the artifacts go). Errors are one line
on stderr. Exit codes: 0 success (for `watch` and `submit --watch`: the job Succeeded), 1 an error or a job that
Failed or was Cancelled, 2 a usage error.

Where `submit` puts local files: under `--upload-to s3://BUCKET/PREFIX/`, else $VIDEOJOB_UPLOAD_TO, else the
namespace's `videojob-cli` ConfigMap key `uploadTo` (a platform team's default per namespace), else `uploads/` in
the bucket of the job's output; as `<prefix><job name>/<input name>/<file name>`. The upload uses the user's own
S3 credentials (AWS_* variables, AWS_PROFILE, ~/.aws) and endpoint (--s3-endpoint or S3_ENDPOINT_URL); the job
then reads the files with the namespace's credentials, so both must reach that bucket.

Libraries: click for the commands (composable groups and options, the de-facto standard, already a dependency of
our toolchain) and rich for the live line, progress bars, colours and tables (it handles terminals, widths and
non-terminals by itself); both come with the `cli` extra, so the operator image does not carry them.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from videojob.api.models import VideoJobSpec
from videojob.cli import views
from videojob.cli.cluster import Cluster, ClusterError
from videojob.cli.transfer import TransferError, Upload, download, presigned_url, s3_client, upload

F = TypeVar("F", bound=Callable[..., Any])
FORMATS = click.Choice(["json", "yaml"])
UPLOAD_ENV = "VIDEOJOB_UPLOAD_TO"

# soft_wrap: a message is one line whatever the width (a terminal wraps it; a pipe or a log keeps it whole).
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
if not out.is_terminal:  # a pipe or a file: tables keep one row per line instead of folding at 80 columns
    out = Console(highlight=False, soft_wrap=True, width=250)


class Failed(Exception):
    """The job did not succeed (exit code 1, the line already printed)."""


def _connection_options(f: F) -> F:
    f = click.option("--kubeconfig", default=None, help="Path to the kubeconfig file.")(f)
    f = click.option("--context", default=None, help="The kubeconfig context to use.")(f)
    f = click.option("-n", "--namespace", default=None, help="Namespace (default: the context's).")(f)
    return f


def _cluster(ctx: click.Context, namespace: str | None, context: str | None, kubeconfig: str | None) -> Cluster:
    """The connection, from the subcommand's options or else the group's (`kubectl videojob -n ns list`)."""
    group = ctx.find_root().params
    return Cluster.connect(
        namespace or group.get("namespace"), context or group.get("context"), kubeconfig or group.get("kubeconfig")
    )


def _emit(obj: Any, fmt: str | None) -> None:
    if fmt == "json":
        click.echo(json.dumps(obj, indent=2, sort_keys=False))
    elif fmt == "yaml":
        click.echo(yaml.safe_dump(obj, sort_keys=False, allow_unicode=True), nl=False)


def _table(rows: list[dict[str, str]], styles: dict[str, Callable[[str], str]] | None = None) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    if not rows:
        return table
    for column in rows[0]:
        table.add_column(column, no_wrap=column not in ("URI", "URL", "MESSAGE"), overflow="fold")
    for row in rows:
        cells = []
        for column, value in row.items():
            style = (styles or {}).get(column)
            cells.append(Text(value, style=style(value)) if style else Text(value))
        table.add_row(*cells)
    return table


def _phase_style(phase: str) -> str:
    return views.PHASE_STYLES.get(phase, "")


def _handle_errors(f: F) -> F:
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except views.UsageError as e:
            err.print(f"error: {e}", style="red", markup=False)
            sys.exit(2)
        except (ClusterError, TransferError) as e:
            err.print(f"error: {e}", style="red", markup=False)
            sys.exit(1)
        except Failed:
            sys.exit(1)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@_connection_options
def cli(namespace: str | None, context: str | None, kubeconfig: str | None) -> None:
    """Submit, follow and collect VideoJobs (videojob.dev)."""


# ---------------------------------------------------------------------------------------------------------------
# watch


def follow(cluster: Cluster, name: str, fmt: str | None = None) -> dict[str, Any]:
    """Show the live line until the job finishes, then the artifacts (or why it did not succeed).

    Returns the final VideoJob; raises Failed when it did not succeed."""
    final: dict[str, Any] | None = None
    if err.is_terminal:
        columns = (
            TextColumn("[bold]{task.fields[name]}"),
            TextColumn("{task.fields[phase]}"),
            BarColumn(bar_width=30),
            TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("ETA {task.fields[eta]}"),
            TextColumn("{task.fields[where]}"),
        )
        with Progress(*columns, console=err, transient=False, auto_refresh=True) as progress:
            task = progress.add_task("", total=100, name=name, phase="", eta="-", where="")
            for vj in cluster.watch(name):
                snap = views.snapshot(vj, views.now())
                phase = f"[{_phase_style(snap.phase)}]{snap.phase:<9}[/]"
                progress.update(task, completed=snap.progress, phase=phase, eta=snap.eta_text(), where=snap.where())
                if snap.finished:
                    final = vj
                    break
    else:  # not a terminal (a pipe, a CI log): one line per visible change
        last = ""
        for vj in cluster.watch(name):
            snap = views.snapshot(vj, views.now())
            line = snap.line()
            if line != last:
                err.print(line, markup=False)
                last = line
            if snap.finished:
                final = vj
                break
    assert final is not None
    _finish(final, fmt)
    return final


def _finish(vj: dict[str, Any], fmt: str | None) -> None:
    snap = views.snapshot(vj, views.now())
    took = views.human_duration(views.run_seconds(vj, views.now()))
    if fmt:
        _emit(vj, fmt)
    elif snap.phase == "Succeeded":
        err.print(f"[green]✔[/] {snap.name} Succeeded in {took}")
        out.print(_table(views.artifact_rows(vj)))
    if snap.phase != "Succeeded":
        why = f"{snap.reason}: {snap.message}" if snap.message else (snap.reason or snap.phase)
        err.print(Text(f"✘ {snap.name} {snap.phase} after {took}: {why}", style=_phase_style(snap.phase)))
        raise Failed()


@cli.command()
@click.argument("name")
@_connection_options
@click.option("-o", "--output", "fmt", type=FORMATS, help="Print the finished VideoJob as json or yaml.")
@click.pass_context
@_handle_errors
def watch(
    ctx: click.Context, name: str, namespace: str | None, context: str | None, kubeconfig: str | None, fmt: str | None
) -> None:
    """Follow NAME live until it finishes; exit 0 only when it Succeeded."""
    follow(_cluster(ctx, namespace, context, kubeconfig), name, fmt)


# ---------------------------------------------------------------------------------------------------------------
# submit


def _load_manifest(path: str) -> dict[str, Any]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    try:
        docs = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as e:
        raise views.UsageError(f"{path}: not YAML ({' '.join(str(e).split())})") from None
    if len(docs) != 1 or not isinstance(docs[0], dict) or docs[0].get("kind") != "VideoJob":
        raise views.UsageError(f"{path}: expected one VideoJob")
    return docs[0]


def _upload_prefix(flag: str | None, cluster: Cluster, spec: dict[str, Any]) -> str:
    return (
        flag
        or os.environ.get(UPLOAD_ENV)
        or cluster.config_defaults().get("uploadTo")
        or views.default_upload_prefix(spec)
    )


def _check_spec(spec: dict[str, Any]) -> None:
    try:
        VideoJobSpec.model_validate(spec)
    except ValidationError as e:
        first = e.errors()[0]
        where = "spec." + ".".join(str(p) for p in first.get("loc", ()))
        raise views.UsageError(f"{where}: {first.get('msg')}") from None


@cli.command()
@click.option("-f", "--filename", help="A VideoJob manifest (- for stdin); local paths in its inputs are uploaded.")
@click.option("--name", help="Name of the VideoJob (default: from the manifest, else the first input's and a suffix).")
@click.option("--input", "inputs", multiple=True, metavar="NAME=PATH|URI", help="An input (repeat; in order).")
@click.option("--output", "output_uri", metavar="s3://BUCKET/PREFIX/", help="Where the artifacts go.")
@click.option("--text", "texts", multiple=True, help="Draw this text over the video (repeatable).")
@click.option("--concat", is_flag=True, help="Join all the inputs, in order.")
@click.option("--priority", type=click.IntRange(1, 10), help="1 (highest) to 10.")
@click.option("--hardware", type=click.Choice(["cpu", "nvidia", "auto"]))
@click.option("--container", type=click.Choice(["mp4", "mkv", "webm", "mov"]))
@click.option("--codec", type=click.Choice(["h264", "h265", "vp9", "av1", "copy"]), help="Video codec.")
@click.option("--resolution", metavar="WxH", help="e.g. 1280x720.")
@click.option("--crf", type=click.IntRange(0, 63))
@click.option("--thumbnail-at", type=float, metavar="SECONDS", help="Also store a JPEG still from this moment.")
@click.option("--metadata", multiple=True, metavar="KEY=VALUE", help="User metadata, echoed in notifications.")
@click.option("--webhook", "webhooks", multiple=True, metavar="URL", help="Notify this HTTPS URL of phase changes.")
@click.option(
    "--upload-to",
    metavar="s3://BUCKET/PREFIX/",
    help="Where local files go (default: $VIDEOJOB_UPLOAD_TO, the namespace's videojob-cli ConfigMap "
    "key uploadTo, else uploads/ in the output's bucket).",
)
@click.option("--s3-endpoint", envvar="S3_ENDPOINT_URL", help="S3-compatible endpoint for uploads (default: AWS).")
@click.option("--watch", "watch_it", is_flag=True, help="Follow the job until it finishes (exit 0 only on success).")
@click.option("--dry-run", is_flag=True, help="Check with the API server, upload nothing, create nothing.")
@click.option("-o", "--format", "fmt", type=FORMATS, help="Print the created VideoJob as json or yaml.")
@_connection_options
@click.pass_context
@_handle_errors
def submit(
    ctx: click.Context,
    filename: str | None,
    name: str | None,
    inputs: tuple[str, ...],
    output_uri: str | None,
    texts: tuple[str, ...],
    concat: bool,
    priority: int | None,
    hardware: str | None,
    container: str | None,
    codec: str | None,
    resolution: str | None,
    crf: int | None,
    thumbnail_at: float | None,
    metadata: tuple[str, ...],
    webhooks: tuple[str, ...],
    upload_to: str | None,
    s3_endpoint: str | None,
    watch_it: bool,
    dry_run: bool,
    fmt: str | None,
    namespace: str | None,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Create a VideoJob from a manifest or from flags, uploading local files first."""
    if filename and inputs:
        raise views.UsageError("give either -f FILE or --input flags, not both")
    if filename:
        body = _load_manifest(filename)
        spec = dict(body.get("spec") or {})
        meta = body.get("metadata") or {}
        job_name = name or meta.get("name") or views.generated_name(meta.get("generateName") or "videojob")
        obj = views.videojob(job_name, spec, meta.get("labels"), meta.get("annotations"))
    else:
        spec = views.spec_from_flags(
            inputs,
            output_uri,
            texts,
            concat,
            priority,
            hardware,
            container,
            codec,
            resolution,
            crf,
            thumbnail_at,
            metadata,
            webhooks,
        )
        first = views.local_path(spec["inputs"][0]["uri"]).stem if spec["inputs"] else "videojob"
        job_name = name or views.generated_name(first)
        obj = views.videojob(job_name, spec)
    cluster = _cluster(ctx, namespace, context, kubeconfig)

    uploads: list[Upload] = []
    locals_ = [i for i in spec.get("inputs") or [] if views.is_local(str(i.get("uri", "")))]
    if locals_:
        prefix = _upload_prefix(upload_to, cluster, spec)
        for item in locals_:
            path = views.local_path(str(item["uri"]))
            if not path.is_file():
                raise views.UsageError(f"input {item.get('name')}: {path} is not a file")
            item["uri"] = views.upload_key(prefix, job_name, str(item["name"]), path)
            uploads.append(Upload(path, item["uri"]))
    _check_spec(spec)
    cluster.create(obj, dry_run=True)  # whatever the API server would refuse, before any upload
    if dry_run:
        for item in uploads:
            err.print(f"would upload {item.path} to {item.uri}", markup=False)
        _emit(obj, fmt or "yaml")
        return
    if uploads:
        upload(s3_client(s3_endpoint), uploads, err)
    created = cluster.create(obj)
    if fmt and not watch_it:
        _emit(created, fmt)
    else:
        err.print(f"videojob.videojob.dev/{job_name} created in namespace {cluster.namespace}", markup=False)
    if watch_it:
        follow(cluster, job_name, fmt)


# ---------------------------------------------------------------------------------------------------------------
# logs, artifacts, cancel, retry, list


@cli.command()
@click.argument("name")
@click.option("--follow/--no-follow", "-f", default=True, help="Keep following while the job runs (default).")
@_connection_options
@click.pass_context
@_handle_errors
def logs(
    ctx: click.Context, name: str, follow: bool, namespace: str | None, context: str | None, kubeconfig: str | None
) -> None:
    """Print the transcoder's output of NAME (every attempt), following it while the job runs."""
    cluster = _cluster(ctx, namespace, context, kubeconfig)
    seen: set[str] = set()
    waiting_said = False
    while True:
        vj = cluster.get(name)
        finished = (vj.get("status") or {}).get("phase") in views.TERMINAL
        fresh = [p for p in cluster.pods(vj) if p["metadata"]["name"] not in seen]
        pod = next(iter(fresh), None)
        if pod is None:
            if finished or not follow:
                if not seen:
                    phase = (vj.get("status") or {}).get("phase") or "Pending"
                    raise ClusterError(
                        f"videojob {name!r} has no transcoder pod ({phase}; finished pods may have "
                        "been cleaned up with their Job)"
                    )
                return
            if not waiting_said:
                err.print(f"waiting for a transcoder pod of {name} ...", markup=False)
                waiting_said = True
            time.sleep(1)
            continue
        state = _container_state(pod)
        if state == "waiting" and follow and not finished:
            time.sleep(0.5)  # the container is not started yet: its log cannot be read
            continue
        pod_name = pod["metadata"]["name"]
        seen.add(pod_name)
        if len(seen) > 1 or len(fresh) > 1:
            node = (pod.get("spec") or {}).get("nodeName")
            err.print(f"--- pod {pod_name} on {node} ---", markup=False)
        for line in cluster.log_lines(pod_name, follow=follow and state == "running"):
            click.echo(line)


def _container_state(pod: dict[str, Any]) -> str:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = status.get("state") or {}
        if state.get("running"):
            return "running"
        if state.get("terminated"):
            return "terminated"
    return "waiting"


@cli.command()
@click.argument("name")
@click.option("--url", "with_urls", is_flag=True, help="Print presigned HTTPS URLs.")
@click.option("--expires", default=3600, show_default=True, help="Seconds the presigned URLs stay valid.")
@click.option(
    "--download",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Download the artifacts into DIR (sha256 checked).",
)
@click.option("--s3-endpoint", envvar="S3_ENDPOINT_URL", help="S3-compatible endpoint (default: AWS).")
@click.option("-o", "--output", "fmt", type=FORMATS, help="json or yaml instead of a table.")
@_connection_options
@click.pass_context
@_handle_errors
def artifacts(
    ctx: click.Context,
    name: str,
    with_urls: bool,
    expires: int,
    directory: Path | None,
    s3_endpoint: str | None,
    fmt: str | None,
    namespace: str | None,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """List the artifacts of NAME; optionally sign URLs for them or download them."""
    cluster = _cluster(ctx, namespace, context, kubeconfig)
    vj = cluster.get(name)
    items = list((vj.get("status") or {}).get("artifacts") or [])
    if not items:
        phase = (vj.get("status") or {}).get("phase") or "Pending"
        raise ClusterError(f"videojob {name!r} has no artifacts ({phase})")
    s3 = s3_client(s3_endpoint) if (with_urls or directory) else None
    if with_urls:
        for item in items:
            item["url"] = presigned_url(s3, str(item["uri"]), expires)
    if directory is not None:
        for path in download(s3, items, directory, err):
            err.print(f"saved {path}", markup=False)
        return
    if fmt:
        _emit(items, fmt)
    elif with_urls:
        out.print(_table([{"KIND": str(i.get("kind", "video")), "URL": i["url"]} for i in items]))
    else:
        out.print(_table(views.artifact_rows(vj)))


@cli.command()
@click.argument("name")
@_connection_options
@click.pass_context
@_handle_errors
def cancel(ctx: click.Context, name: str, namespace: str | None, context: str | None, kubeconfig: str | None) -> None:
    """Cancel NAME (spec.cancel: true); its pod is stopped."""
    cluster = _cluster(ctx, namespace, context, kubeconfig)
    phase = (cluster.get(name).get("status") or {}).get("phase")
    if phase in views.TERMINAL:
        raise ClusterError(f"videojob {name!r} already finished ({phase}); nothing to cancel")
    cluster.cancel(name)
    err.print(f"videojob.videojob.dev/{name} cancel requested", markup=False)


@cli.command()
@click.argument("name")
@click.option("--name", "new_name", help="Name of the new VideoJob (default: NAME-retry-N).")
@click.option("--watch", "watch_it", is_flag=True, help="Follow the new job until it finishes.")
@click.option("-o", "--output", "fmt", type=FORMATS, help="Print the new VideoJob as json or yaml.")
@_connection_options
@click.pass_context
@_handle_errors
def retry(
    ctx: click.Context,
    name: str,
    new_name: str | None,
    watch_it: bool,
    fmt: str | None,
    namespace: str | None,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Create a new VideoJob from NAME's spec (a VideoJob's work is immutable, so a retry is a new one)."""
    cluster = _cluster(ctx, namespace, context, kubeconfig)
    old = cluster.get(name)
    if new_name is None:
        base = views.dns_name(name.split("-retry-")[0], 44)
        new_name = next(f"{base}-retry-{n}" for n in range(1, 1000) if not cluster.exists(f"{base}-retry-{n}"))
    created = cluster.create(views.retry_of(old, new_name))
    if fmt and not watch_it:
        _emit(created, fmt)
    else:
        err.print(f"videojob.videojob.dev/{new_name} created (a retry of {name})", markup=False)
    if watch_it:
        follow(cluster, new_name, fmt)


@cli.command(name="list")
@click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace.")
@_connection_options
@click.option("-o", "--output", "fmt", type=FORMATS, help="json or yaml instead of a table.")
@click.pass_context
@_handle_errors
def list_(
    ctx: click.Context,
    all_namespaces: bool,
    namespace: str | None,
    context: str | None,
    kubeconfig: str | None,
    fmt: str | None,
) -> None:
    """List VideoJobs with phase, progress, queue position, run time and age."""
    cluster = _cluster(ctx, namespace, context, kubeconfig)
    items = cluster.videojobs(all_namespaces)
    if fmt:
        _emit({"apiVersion": "v1", "kind": "List", "items": items}, fmt)
        return
    if not items:
        where = "any namespace" if all_namespaces else f"namespace {cluster.namespace}"
        err.print(f"No VideoJobs in {where}.", markup=False)
        return
    now = views.now()
    rows = [views.list_row(vj, now) for vj in items]
    for row in rows:
        if not all_namespaces:
            del row["NAMESPACE"]
    out.print(_table(rows, {"PHASE": _phase_style, "REASON": lambda _: "red"}))


def main() -> None:
    cli(prog_name="kubectl videojob")


if __name__ == "__main__":  # pragma: no cover
    main()
