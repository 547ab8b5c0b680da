"""iRODS error codes the grid returns, with the values of the server's rodsErrorTable.h.

Clients map these integers to exception classes (python-irodsclient does it in
irods/exception.py), so returning the real number is what makes a client raise the
same exception it would raise against a production zone.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Error codes of rodsErrorTable.h that the grid returns, under the server's names."""

    SYS_HEADER_READ_LEN_ERR = -4000
    SYS_UNMATCHED_API_NUM = -12000
    SYS_NO_API_PRIV = -13000
    SYS_API_INPUT_ERR = -14000
    SYS_FILE_DESC_OUT_OF_RANGE = -19000
    SYS_BAD_FILE_DESCRIPTOR = -23000
    SYS_COPY_LEN_ERR = -27000
    SYS_INVALID_RESC_TYPE = -30000
    SYS_INVALID_FILE_PATH = -31000
    SYS_INVALID_RESC_INPUT = -32000
    SYS_INVALID_OPR_TYPE = -35000
    SYS_COPY_ALREADY_IN_RESC = -46000
    SYS_RESC_DOES_NOT_EXIST = -78000
    SYS_RESC_IS_DOWN = -105000
    SYS_MAX_CONNECT_COUNT_EXCEEDED = -118000
    SYS_INVALID_INPUT_PARAM = -130000
    SYS_INTERNAL_ERR = -154000
    SYS_REPLICA_DOES_NOT_EXIST = -164000
    SYS_NO_GOOD_REPLICA = -166000
    SYS_REPLICA_INACCESSIBLE = -168000
    SYS_NOT_ALLOWED = -169000
    NOT_A_COLLECTION = -170000
    JSON_VALIDATION_ERROR = -172000
    USER_FILE_DOES_NOT_EXIST = -310000
    USER_FILE_TOO_LARGE = -311000
    OVERWRITE_WITHOUT_FORCE_FLAG = -312000
    USER_CHKSUM_MISMATCH = -314000
    USER__NULL_INPUT_ERR = -316000
    USER_INPUT_PATH_ERR = -317000
    USER_INPUT_OPTION_ERR = -318000
    USER_NO_RESC_INPUT_ERR = -321000
    SAME_SRC_DEST_PATHS_ERR = -339000
    OBJ_PATH_DOES_NOT_EXIST = -358000
    USER_INVALID_RESC_INPUT = -361000
    USER_FILE_SIZE_MISMATCH = -401000
    USER_INCOMPATIBLE_PARAMS = -402000
    INTERMEDIATE_REPLICA_ACCESS = -405000
    LOCKED_DATA_OBJECT_ACCESS = -406000
    CHECK_VERIFICATION_RESULTS = -407000
    UNIX_FILE_CREATE_ERR = -511000
    UNIX_FILE_RENAME_ERR = -528000
    UNIX_FILE_TRUNCATE_ERR = -529000
    CAT_SQL_ERR = -806000
    CAT_NO_ROWS_FOUND = -808000
    CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME = -809000
    CAT_INVALID_RESOURCE_TYPE = -810000
    CAT_UNKNOWN_COLLECTION = -814000
    CAT_INVALID_ARGUMENT = -816000
    CAT_UNKNOWN_FILE = -817000
    CAT_NO_ACCESS_PERMISSION = -818000
    CAT_SUCCESS_BUT_WITH_NO_INFO = -819000
    CAT_COLLECTION_NOT_EMPTY = -821000
    CAT_INVALID_AUTHENTICATION = -826000
    CAT_INVALID_USER = -827000
    CAT_INVALID_ZONE = -828000
    CAT_INVALID_GROUP = -829000
    CAT_INSUFFICIENT_PRIVILEGE_LEVEL = -830000
    CAT_INVALID_RESOURCE = -831000
    CAT_NAME_EXISTS_AS_COLLECTION = -833000
    CAT_NAME_EXISTS_AS_DATAOBJ = -834000
    CAT_RESOURCE_NOT_EMPTY = -835000
    CAT_NOT_A_DATAOBJ_AND_NOT_A_COLLECTION = -836000
    CAT_UNKNOWN_SPECIFIC_QUERY = -853000
    CAT_STATEMENT_TABLE_FULL = -860000
    CAT_NO_CHECKSUM_FOR_REPLICA = -862000
    CAT_TICKET_INVALID = -890000
    CAT_TICKET_EXPIRED = -891000
    CAT_TICKET_USES_EXCEEDED = -892000
    CAT_TICKET_USER_EXCLUDED = -893000
    CAT_TICKET_HOST_EXCLUDED = -894000
    CAT_TICKET_GROUP_EXCLUDED = -895000
    CAT_TICKET_WRITE_USES_EXCEEDED = -896000
    CAT_TICKET_WRITE_BYTES_EXCEEDED = -897000
    INPUT_ARG_NOT_WELL_FORMED_ERR = -1084000
    HIERARCHY_ERROR = -1803000
    DIRECT_CHILD_ACCESS = -1816000
    INVALID_OPERATION = -1811000


CODES = {code.name: int(code) for code in ErrorCode}


class IrodsError(Exception):
    """An API failure carried back to the client as RODS_API_REPLY intInfo plus an RError."""

    def __init__(self, name: "str | ErrorCode", message: str = "", body: bytes = b"", errno_: int = 0,
                 stacked: bool = True) -> None:
        name = ErrorCode[name].name if isinstance(name, str) else ErrorCode(name).name
        super().__init__(message or name)
        self.name = name
        self.code = int(ErrorCode[name]) - errno_    # a system error adds its errno, as the server does
        self.message = message or name
        self.body = body     # a packed reply some APIs send with their error (the JSON APIs' error object)
        self.stacked = stacked   # False: the server adds no RError message (the body says it all)


def fail(name: "str | ErrorCode", message: str = "", body: bytes = b"", errno_: int = 0,
         stacked: bool = True) -> IrodsError:
    """The error to raise; ``name`` is a rodsErrorTable.h name (checked: a typo is a KeyError)."""
    return IrodsError(name, message, body, errno_, stacked)
