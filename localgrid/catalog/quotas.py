"""Quotas (R_QUOTA_MAIN, R_QUOTA_USAGE): limits per user or group and resource, and the usage iadmin cu computes.

As chlSetQuota and chlCalcUsageAndQuota: a new quota's ``over`` is empty until usage is computed;
computing it records each user's bytes per leaf resource (R_QUOTA_USAGE) and sets every quota's
``over`` to the usage it covers minus its limit (a group's: its members'; resource 0: every resource).
Quotas are recorded, not enforced (a 4.3 zone enforces them only with a rule).
"""

from __future__ import annotations

from .base import Tables
from .schema import now

class QuotaTables(Tables):
    """R_QUOTA_MAIN and R_QUOTA_USAGE."""

    def set_quota(self, user_id: int, resc_id: int, limit: int) -> None:
        """iadmin suq/sgq: a limit in bytes on a resource (0: total); a limit of 0 removes the quota."""
        if limit == 0:
            self.db.execute("DELETE FROM r_quota_main WHERE user_id=? AND resc_id=?", (user_id, resc_id))
            return
        self.db.execute("INSERT OR REPLACE INTO r_quota_main VALUES (?, ?, ?, NULL, ?)", (user_id, resc_id, limit, now()))

    def calculate_usage(self) -> None:
        """iadmin cu (chlCalcUsageAndQuota): each quota's ``over`` is the bytes owned by the user (or by
        the group's members), on that resource or in total, minus the limit."""
        ts = now()
        self.db.execute("DELETE FROM r_quota_usage")
        self.db.execute("INSERT INTO r_quota_usage SELECT u.user_id, d.resc_id, sum(d.data_size), ? FROM r_data_main d"
                        " JOIN r_user_main u ON u.user_name = d.data_owner_name AND u.zone_name = d.data_owner_zone"
                        " GROUP BY u.user_id, d.resc_id", (ts,))
        for user_id, resc_id, limit in self.db.execute(
                "SELECT user_id, resc_id, quota_limit FROM r_quota_main").fetchall():
            owners = "SELECT u.user_name FROM r_user_group g JOIN r_user_main u ON u.user_id = g.user_id" \
                     " WHERE g.group_user_id = ?"
            where = f"d.data_owner_name IN ({owners})" + ("" if resc_id == 0 else " AND d.resc_id = ?")
            used = self.db.execute(f"SELECT coalesce(sum(d.data_size), 0) FROM r_data_main d WHERE {where}",
                                   (user_id,) if resc_id == 0 else (user_id, resc_id)).fetchone()[0]
            self.db.execute("UPDATE r_quota_main SET quota_over=?, modify_ts=? WHERE user_id=? AND resc_id=?",
                            (used - limit, now(), user_id, resc_id))
