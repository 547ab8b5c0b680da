"""Names of the numbers on the wire: API numbers (apiNumber.h), object and operation types.

The names are iRODS's own (``lib/api/include/irods/apiNumberData.h``, ``rodsType.h``,
``dataObjInpOut.h``), so that a reader finds ``DATA_OBJ_OPEN_AN`` here and its handler
with ``grep``, as in the server's ``server/api/src/rsDataObjOpen.cpp``.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class ApiNumber(IntEnum):
    """The APIs the local grid answers, under the server's names and numbers."""

    DATA_OBJ_CREATE_AN = 601
    DATA_OBJ_OPEN_AN = 602
    DATA_OBJ_UNLINK_AN = 615
    MOD_DATA_OBJ_META_AN = 622
    DATA_OBJ_RENAME_AN = 627
    DATA_OBJ_CHKSUM_AN = 629
    DATA_OBJ_TRIM_AN = 632
    OBJ_STAT_AN = 633
    DATA_OBJ_TRUNCATE_AN = 652
    DATA_OBJ_CLOSE_AN = 673
    DATA_OBJ_LSEEK_AN = 674
    DATA_OBJ_READ_AN = 675
    DATA_OBJ_WRITE_AN = 676
    RM_COLL_AN = 679
    COLL_CREATE_AN = 681
    DATA_OBJ_REPL_AN = 695
    DATA_OBJ_COPY_AN = 696
    GENERAL_ADMIN_AN = 701
    GEN_QUERY_AN = 702
    AUTH_REQUEST_AN = 703
    AUTH_RESPONSE_AN = 704
    MOD_AVU_METADATA_AN = 706
    MOD_ACCESS_CONTROL_AN = 707
    USER_ADMIN_AN = 714
    SPECIFIC_QUERY_AN = 722
    TICKET_ADMIN_AN = 723
    REPLICA_TRUNCATE_AN = 802
    GET_FILE_DESCRIPTOR_INFO_APN = 20000
    ATOMIC_APPLY_METADATA_OPERATIONS_APN = 20002
    REPLICA_CLOSE_APN = 20004
    TOUCH_APN = 20007
    AUTHENTICATION_APN = 110000


# APIs a client may call before it has logged in.
UNAUTHENTICATED = frozenset({ApiNumber.AUTHENTICATION_APN, ApiNumber.AUTH_REQUEST_AN, ApiNumber.AUTH_RESPONSE_AN})
# APIs that stream bytes: fault injection drops them in the middle of the bytes.
STREAMING = frozenset({ApiNumber.DATA_OBJ_READ_AN, ApiNumber.DATA_OBJ_WRITE_AN})


class ObjType(IntEnum):
    """objType_t of rodsType.h, as OBJ_STAT answers it."""

    DATA_OBJ_T = 1
    COLL_OBJ_T = 2


class OprType(IntEnum):
    """oprType of a DataObjInp (dataObjInpOut.h) where the grid reads it."""

    RENAME_DATA_OBJ = 11
    RENAME_COLL = 12


class OpenFlag(IntFlag):
    """The POSIX open flags a client sends in openFlags (Linux values, as PRC sends them)."""

    O_RDONLY = 0
    O_WRONLY = 1
    O_RDWR = 2
    O_ACCMODE = 3
    O_CREAT = 64
    O_TRUNC = 512


class Whence(IntEnum):
    SEEK_SET = 0
    SEEK_CUR = 1
    SEEK_END = 2
