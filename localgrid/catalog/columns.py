"""GenQuery's columns (rodsGenQuery.h numbers) and the catalogue tables they live in.

A column number maps to a table group and an SQL expression; a group lists the tables it adds
to FROM; links say how groups join.  ``genquery`` builds one statement from these.
"""

from __future__ import annotations

# Table groups: the tables a group adds to FROM, in join order (alias, table, on-condition
# inside the group).
GROUPS: dict[str, list[tuple[str, str, str]]] = {
    "data": [("d", "r_data_main", "")],
    "coll": [("c", "r_coll_main", "")],
    "resc": [("r", "r_resc_main", "")],
    "zone": [("z", "r_zone_main", "")],
    "user": [("u", "r_user_main", "")],
    "group": [("ug", "r_user_group", ""), ("g", "r_user_main", "g.user_id = ug.group_user_id")],
    "dmeta": [("dmm", "r_objt_metamap", ""), ("dm", "r_meta_main", "dm.meta_id = dmm.meta_id")],
    "cmeta": [("cmm", "r_objt_metamap", ""), ("cm", "r_meta_main", "cm.meta_id = cmm.meta_id")],
    "rmeta": [("rmm", "r_objt_metamap", ""), ("rm", "r_meta_main", "rm.meta_id = rmm.meta_id")],
    "umeta": [("umm", "r_objt_metamap", ""), ("um", "r_meta_main", "um.meta_id = umm.meta_id")],
    "daccess": [("da", "r_objt_access", ""),
                ("dt", "r_tokn_main", "dt.token_id = da.access_type_id AND dt.token_namespace = 'access_type'")],
    "caccess": [("ca", "r_objt_access", ""),
                ("ct", "r_tokn_main", "ct.token_id = ca.access_type_id AND ct.token_namespace = 'access_type'")],
    "cuser": [("cu", "r_user_main", "")],
    "uauth": [("ua", "r_user_auth", "")],
    "quota": [("q", "r_quota_main", "")],
    "usage": [("qu", "r_quota_usage", "")],
    "ticket": [("tk", "r_ticket_main", "")],
    "towner": [("tku", "r_user_main", "")],
    "tdata": [("tkd", "r_data_main", ""), ("tkdc", "r_coll_main", "tkdc.coll_id = tkd.coll_id")],
    "tcoll": [("tkc", "r_coll_main", "")],
    "thost": [("th", "r_ticket_allowed_hosts", "")],
    "tuser": [("tau", "r_ticket_allowed_users", "")],
    "tgroup": [("tag", "r_ticket_allowed_groups", "")],
}

# Links between groups: the condition that joins them (either direction).
EDGES: dict[frozenset, str] = {
    frozenset(("data", "coll")): "d.coll_id = c.coll_id",
    frozenset(("data", "resc")): "d.resc_id = r.resc_id",
    frozenset(("data", "dmeta")): "dmm.object_id = d.data_id",
    frozenset(("coll", "cmeta")): "cmm.object_id = c.coll_id",
    frozenset(("resc", "rmeta")): "rmm.object_id = r.resc_id",
    frozenset(("user", "umeta")): "umm.object_id = u.user_id",
    frozenset(("user", "group")): "ug.user_id = u.user_id",
    frozenset(("data", "daccess")): "da.object_id = d.data_id",
    frozenset(("daccess", "user")): "u.user_id = da.user_id",
    frozenset(("coll", "caccess")): "ca.object_id = c.coll_id",
    frozenset(("caccess", "cuser")): "cu.user_id = ca.user_id",
    frozenset(("user", "uauth")): "ua.user_id = u.user_id",
    frozenset(("ticket", "towner")): "tku.user_id = tk.user_id",
    frozenset(("ticket", "tdata")): "tkd.data_id = tk.object_id",
    frozenset(("ticket", "tcoll")): "tkc.coll_id = tk.object_id",
    frozenset(("ticket", "thost")): "th.ticket_id = tk.ticket_id",
    frozenset(("ticket", "tuser")): "tau.ticket_id = tk.ticket_id",
    frozenset(("ticket", "tgroup")): "tag.ticket_id = tk.ticket_id",
}
# Groups that only make sense attached to an owner (an AVU of a data object...).
NEEDS = {"dmeta": "data", "cmeta": "coll", "rmeta": "resc", "umeta": "user", "daccess": "data",
         "caccess": "coll", "cuser": "caccess", "group": "user", "towner": "ticket", "tdata": "ticket",
         "tcoll": "ticket", "thost": "ticket", "tuser": "ticket", "tgroup": "ticket"}
ROOT_ORDER = ["data", "coll", "resc", "user", "zone", "ticket", "quota", "usage"]

_REPL = "CAST(d.data_is_dirty AS TEXT)"
_HIER = ("(WITH RECURSIVE h(id, parent, path) AS (SELECT resc_id, resc_parent, resc_name FROM r_resc_main"
         " WHERE resc_id = d.resc_id UNION ALL SELECT p.resc_id, p.resc_parent, p.resc_name || ';' || h.path"
         " FROM r_resc_main p JOIN h ON h.parent = CAST(p.resc_id AS TEXT)) SELECT path FROM h WHERE parent = '')")

# Column number -> (group, SQL expression).  Numbers are those of rodsGenQuery.h.
COLUMNS: dict[int, tuple[str, str]] = {
    101: ("zone", "z.zone_id"), 102: ("zone", "z.zone_name"), 103: ("zone", "z.zone_type_name"),
    104: ("zone", "z.zone_conn_string"), 105: ("zone", "z.r_comment"), 106: ("zone", "z.create_ts"),
    107: ("zone", "z.modify_ts"),
    201: ("user", "u.user_id"), 202: ("user", "u.user_name"), 203: ("user", "u.user_type_name"),
    204: ("user", "u.zone_name"), 206: ("user", "u.user_info"), 207: ("user", "u.r_comment"),
    208: ("user", "u.create_ts"), 209: ("user", "u.modify_ts"),
    301: ("resc", "r.resc_id"), 302: ("resc", "r.resc_name"), 303: ("resc", "r.zone_name"),
    304: ("resc", "r.resc_type_name"), 305: ("resc", "r.resc_class_name"), 306: ("resc", "r.resc_net"),
    307: ("resc", "r.resc_def_path"), 308: ("resc", "r.free_space"), 309: ("resc", "r.resc_info"),
    310: ("resc", "r.r_comment"), 311: ("resc", "r.create_ts"), 312: ("resc", "r.modify_ts"),
    313: ("resc", "r.resc_status"), 314: ("resc", "r.free_space_ts"), 315: ("resc", "r.resc_children"),
    316: ("resc", "r.resc_context"), 317: ("resc", "r.resc_parent"), 318: ("resc", "r.resc_parent_context"),
    401: ("data", "d.data_id"), 402: ("data", "d.coll_id"), 403: ("data", "d.data_name"),
    404: ("data", "d.data_repl_num"), 405: ("data", "d.data_version"), 406: ("data", "d.data_type_name"),
    407: ("data", "d.data_size"),
    409: ("data", "(SELECT resc_name FROM r_resc_main WHERE resc_id = d.resc_id)"),
    410: ("data", "d.data_path"), 411: ("data", "d.data_owner_name"), 412: ("data", "d.data_owner_zone"),
    413: ("data", _REPL), 414: ("data", "d.data_status"), 415: ("data", "d.data_checksum"),
    416: ("data", "d.data_expiry"), 417: ("data", "d.data_map_id"), 418: ("data", "d.r_comment"),
    419: ("data", "d.create_ts"), 420: ("data", "d.modify_ts"), 421: ("data", "d.data_mode"),
    422: ("data", _HIER), 423: ("data", "d.resc_id"),
    500: ("coll", "c.coll_id"), 501: ("coll", "c.coll_name"), 502: ("coll", "c.parent_coll_name"),
    503: ("coll", "c.coll_owner_name"), 504: ("coll", "c.coll_owner_zone"), 505: ("coll", "c.coll_map_id"),
    506: ("coll", "c.coll_inheritance"), 507: ("coll", "c.r_comment"), 508: ("coll", "c.create_ts"),
    509: ("coll", "c.modify_ts"), 510: ("coll", "c.coll_type"), 511: ("coll", "c.coll_info1"),
    512: ("coll", "c.coll_info2"),
    600: ("dmeta", "dm.meta_attr_name"), 601: ("dmeta", "dm.meta_attr_value"),
    602: ("dmeta", "dm.meta_attr_unit"), 603: ("dmeta", "dm.meta_id"), 604: ("dmeta", "dm.create_ts"),
    605: ("dmeta", "dm.modify_ts"),
    610: ("cmeta", "cm.meta_attr_name"), 611: ("cmeta", "cm.meta_attr_value"),
    612: ("cmeta", "cm.meta_attr_unit"), 613: ("cmeta", "cm.meta_id"), 614: ("cmeta", "cm.create_ts"),
    615: ("cmeta", "cm.modify_ts"),
    630: ("rmeta", "rm.meta_attr_name"), 631: ("rmeta", "rm.meta_attr_value"),
    632: ("rmeta", "rm.meta_attr_unit"), 633: ("rmeta", "rm.meta_id"), 634: ("rmeta", "rm.create_ts"),
    635: ("rmeta", "rm.modify_ts"),
    640: ("umeta", "um.meta_attr_name"), 641: ("umeta", "um.meta_attr_value"),
    642: ("umeta", "um.meta_attr_unit"), 643: ("umeta", "um.meta_id"), 644: ("umeta", "um.create_ts"),
    645: ("umeta", "um.modify_ts"),
    700: ("daccess", "da.access_type_id"), 701: ("daccess", "dt.token_name"),
    702: ("daccess", "dt.token_namespace"), 703: ("daccess", "da.user_id"), 704: ("daccess", "da.object_id"),
    710: ("caccess", "ca.access_type_id"), 711: ("caccess", "ct.token_name"),
    712: ("caccess", "ct.token_namespace"), 713: ("caccess", "ca.user_id"), 714: ("caccess", "ca.object_id"),
    900: ("group", "g.user_id"), 901: ("group", "g.user_name"),
    1300: ("cuser", "cu.user_name"), 1301: ("cuser", "cu.zone_name"),
    1600: ("uauth", "ua.user_id"), 1601: ("uauth", "ua.user_auth_name"),
    2000: ("quota", "q.user_id"), 2001: ("quota", "q.resc_id"), 2002: ("quota", "q.quota_limit"),
    2003: ("quota", "q.quota_over"), 2004: ("quota", "q.modify_ts"),
    2010: ("usage", "qu.user_id"), 2011: ("usage", "qu.resc_id"), 2012: ("usage", "qu.quota_usage"),
    2013: ("usage", "qu.modify_ts"),
    2020: ("quota", "coalesce((SELECT resc_name FROM r_resc_main WHERE resc_id = q.resc_id), 'total')"),
    2021: ("quota", "(SELECT user_name FROM r_user_main WHERE user_id = q.user_id)"),
    2022: ("quota", "(SELECT zone_name FROM r_user_main WHERE user_id = q.user_id)"),
    2023: ("quota", "(SELECT user_type_name FROM r_user_main WHERE user_id = q.user_id)"),
    # tickets (TicketQuery): R_TICKET_MAIN, its owner, its object, its allowed hosts, users and groups
    2200: ("ticket", "tk.ticket_id"), 2201: ("ticket", "tk.ticket_string"), 2202: ("ticket", "tk.ticket_type"),
    2203: ("ticket", "tk.user_id"), 2204: ("ticket", "tk.object_id"), 2205: ("ticket", "tk.object_type"),
    2206: ("ticket", "tk.uses_limit"), 2207: ("ticket", "tk.uses_count"), 2208: ("ticket", "tk.ticket_expiry_ts"),
    2209: ("ticket", "tk.create_ts"), 2210: ("ticket", "tk.modify_ts"), 2211: ("ticket", "tk.write_file_count"),
    2212: ("ticket", "tk.write_file_limit"), 2213: ("ticket", "tk.write_byte_count"),
    2214: ("ticket", "tk.write_byte_limit"), 2220: ("thost", "th.ticket_id"), 2221: ("thost", "th.host"),
    2222: ("tuser", "tau.ticket_id"), 2223: ("tuser", "tau.user_name"), 2224: ("tgroup", "tag.ticket_id"),
    2225: ("tgroup", "tag.group_name"), 2226: ("tdata", "tkd.data_name"), 2227: ("tdata", "tkdc.coll_name"),
    2228: ("tcoll", "tkc.coll_name"), 2229: ("towner", "tku.user_name"), 2230: ("towner", "tku.zone_name"),
}
NUMERIC = {101, 201, 301, 401, 402, 404, 407, 417, 423, 500, 505, 700, 703, 704, 710, 713, 714, 900, 1600,
           2000, 2001, 2002, 2003, 2010, 2011, 2012, 2200, 2203, 2204, 2206, 2207, 2211, 2212, 2213, 2214, 2220, 2222, 2224}
