"""Every flag iget and iput 4.3 accept, and what each does in ``secure-iget``/``secure-iput``.

In iRODS 4.3 both commands share one option parser (``irods/irods``
``lib/core/src/irods_parse_command_line_options.cpp``), so each accepts all of these
flags, whatever its usage text lists.  A job script written for the icommands must run
unchanged with the names swapped, so each flag is, per command, one of:

* ``implemented``: it does what the icommand's usage text says, here;
* ``accepted``: our design already does it (or it has no effect here): a one-line note
  on stderr says so and the command goes on;
* ``refused``: it cannot apply; the command exits 1 with one line saying why.

This table is the one place these decisions live: the click options of
:mod:`secure_irods.cli` are built from it, ``docs/icommands.md`` lists it and
``tests/test_secure_icommands.py`` walks it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Flag", "Use", "FLAGS", "IMPLEMENTED", "ACCEPTED", "REFUSED", "flag_named"]

IMPLEMENTED, ACCEPTED, REFUSED = "implemented", "accepted", "refused"


@dataclass(frozen=True)
class Use:
    """What a flag does in one command: its kind and one line saying what happens."""

    kind: str
    text: str


@dataclass(frozen=True)
class Flag:
    """One icommands option: its spellings, its click parameter, whether it takes a value."""

    names: tuple[str, ...]      # as on the command line: ("-a", "--all")
    dest: str                   # click parameter name
    metavar: str | None         # None: a switch
    get: Use
    put: Use

    def use(self, command: str) -> Use:
        return self.get if command == "get" else self.put


_NOT_GET = "has no meaning for a get; ignored"

FLAGS: tuple[Flag, ...] = (
    Flag(("-a", "--all"), "all_replicas", None,
         Use(ACCEPTED, f"-a (update all copies) {_NOT_GET}"),
         Use(IMPLEMENTED, "with -f, the new content is replicated to every other resource that held a replica")),
    Flag(("-b", "--bulk"), "bulk", None,
         Use(ACCEPTED, "-b: every get of the command already shares one connection (get_many)"),
         Use(IMPLEMENTED, "uploads go through put_many over one connection, each atomic and verified "
                          "(no 50-file tar bundles); -f is allowed")),
    Flag(("-D", "--data_type"), "data_type", "TYPE",
         Use(ACCEPTED, f"-D (data type) {_NOT_GET}"),
         Use(IMPLEMENTED, "the data type is registered with the object before it appears at its name")),
    Flag(("-f", "--force"), "force", None,
         Use(IMPLEMENTED, "overwrite an existing local file (a file with the same size and checksum is kept)"),
         Use(IMPLEMENTED, "overwrite an existing data object (replaced by an atomic rename)")),
    Flag(("-I", "--redirect"), "redirect", None,
         Use(ACCEPTED, "-I ignored: transfers go through the zone's host on the node's capped connections"),
         Use(ACCEPTED, "-I ignored: transfers go through the zone's host on the node's capped connections")),
    Flag(("-k", "--checksum"), "checksum", None,
         Use(ACCEPTED, "-k: every get is checksum-verified anyway"),
         Use(ACCEPTED, "-k: done anyway: the zone registers a sha2 checksum, compared with the local file's")),
    Flag(("-K", "--verify_checksum"), "verify", None,
         Use(ACCEPTED, "-K: done anyway: every get is checked against the catalogue checksum"),
         Use(ACCEPTED, "-K: done anyway: the server's checksum is compared with the local one before the rename")),
    Flag(("-n", "--repl_num"), "replica", "REPLNUM",
         Use(IMPLEMENTED, "read the replica with this number (from the resource holding it)"),
         Use(IMPLEMENTED, "with -f, write to the resource holding the replica with this number")),
    Flag(("-N", "--num_threads"), "threads", "N",
         Use(IMPLEMENTED, "connections per get of 32 MiB or more (0 or 1: one; extra ones only from free "
                          "throttle slots)"),
         Use(ACCEPTED, "-N ignored: a put sends one stream with a request in flight")),
    Flag(("-P", "--progress"), "progress", None,
         Use(IMPLEMENTED, "progress on stderr: a bar on a terminal, else one line per object "
                          "(resumed bytes shown as resumed)"),
         Use(IMPLEMENTED, "progress on stderr: a bar on a terminal, else one line per object "
                          "(resumed bytes shown as resumed)")),
    Flag(("-Q", "--rbudp"), "rbudp", None,
         Use(ACCEPTED, "-Q (RBUDP, deprecated in 4.3) ignored: TCP is used"),
         Use(ACCEPTED, "-Q (RBUDP, deprecated in 4.3) ignored: TCP is used")),
    Flag(("-r", "--recursive"), "recursive", None,
         Use(IMPLEMENTED, "collections recursively; a missing target is created if its parent exists; "
                          "a repeated run writes into the same target (no nesting)"),
         Use(IMPLEMENTED, "directories recursively; a missing target is created if its parent exists; "
                          "a repeated run writes into the same target (no nesting)")),
    Flag(("-R", "--dest_resc"), "resource", "RESOURCE",
         Use(IMPLEMENTED, "read from this resource"),
         Use(IMPLEMENTED, "write to this resource (default: irods_default_resource)")),
    Flag(("-t", "--ticket"), "ticket", "TICKET",
         Use(IMPLEMENTED, "use this ticket for access (sent on every connection)"),
         Use(IMPLEMENTED, "use this ticket for access (sent on every connection)")),
    Flag(("-T", "--renew_socket"), "renew", None,
         Use(IMPLEMENTED, "the connection is closed and reopened between objects once 10 minutes old"),
         Use(IMPLEMENTED, "the connection is closed and reopened between objects once 10 minutes old")),
    Flag(("-v", "--verbose"), "verbose", None,
         Use(IMPLEMENTED, "one line per object; -vv also logs each retry"),
         Use(IMPLEMENTED, "one line per object; -vv also logs each retry")),
    Flag(("-V", "--very_verbose"), "very_verbose", None,
         Use(IMPLEMENTED, "as -vv: one line per object and each retry"),
         Use(IMPLEMENTED, "as -vv: one line per object and each retry")),
    Flag(("-X", "--restart_file"), "restart_file", "FILE",
         Use(IMPLEMENTED, "objects done are recorded in FILE; a rerun skips them, and a partly fetched "
                          "object resumes from its temporary file"),
         Use(IMPLEMENTED, "files done are recorded in FILE; a rerun skips them, and a partly uploaded "
                          "file resumes from its temporary object")),
    Flag(("--lfrestart",), "lfrestart", "FILE",
         Use(ACCEPTED, "--lfrestart: done anyway: every get resumes from its temporary file; FILE is not written"),
         Use(ACCEPTED, "--lfrestart: done anyway: every put resumes from its temporary object; FILE is not written")),
    Flag(("--retries",), "retries", "COUNT",
         Use(IMPLEMENTED, "retries after the first attempt that gets no answer (transient errors only; "
                          "-X is not needed)"),
         Use(IMPLEMENTED, "retries after the first attempt that gets no answer (transient errors only; "
                          "-X is not needed)")),
    Flag(("--link",), "link", None,
         Use(ACCEPTED, f"--link {_NOT_GET}"),
         Use(IMPLEMENTED, "as --ignore-symlinks (deprecated spelling)")),
    Flag(("--ignore-symlinks",), "ignore_symlinks", None,
         Use(ACCEPTED, f"--ignore-symlinks {_NOT_GET}"),
         Use(IMPLEMENTED, "symbolic links are skipped, as sources and in -r walks")),
    Flag(("--wlock",), "wlock", None,
         Use(ACCEPTED, f"--wlock {_NOT_GET}"),
         Use(ACCEPTED, "--wlock: done anyway: a put writes a temporary object renamed into place once "
                       "verified, so no reader sees partial bytes")),
    Flag(("--rlock",), "rlock", None,
         Use(ACCEPTED, "--rlock (deprecated) ignored: a get reads a good replica and verifies it"),
         Use(ACCEPTED, "--rlock has no meaning for a put; ignored")),
    Flag(("--purgec",), "purgec", None,
         Use(ACCEPTED, "--purgec ignored: trim a compound resource's cache replica with itrim"),
         Use(ACCEPTED, "--purgec ignored: trim a compound resource's cache replica with itrim")),
    Flag(("--kv_pass",), "kv_pass", "KEY=VALUE;...",
         Use(REFUSED, "--kv_pass is not supported: key-values are not passed to resource plugins"),
         Use(REFUSED, "--kv_pass is not supported: key-values are not passed to resource plugins")),
    Flag(("--metadata",), "metadata", "A;V;U;...",
         Use(ACCEPTED, f"--metadata {_NOT_GET}"),
         Use(IMPLEMENTED, "AVUs attached before the object appears at its name (attr;value;unit;...)")),
    Flag(("--acl",), "acl", "PERM USER;...",
         Use(ACCEPTED, f"--acl {_NOT_GET}"),
         Use(IMPLEMENTED, "permissions set before the object appears at its name ('read alice;own bob;')")),
)


def flag_named(name: str) -> Flag:
    """The flag spelt ``name`` (``-X`` or ``--restart_file``)."""
    for flag in FLAGS:
        if name in flag.names:
            return flag
    raise KeyError(name)
