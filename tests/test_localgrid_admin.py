"""Group administration, quotas and user DNs on the local grid, through real PRC."""

from __future__ import annotations

import irods.exception as ex
import pytest
from irods.models import Quota
from irods.session import iRODSSession


@pytest.fixture
def admin(grid, session):
    if not grid.local:
        pytest.skip("creates users: local grid only")
    return session


def _session(grid, user, password):
    return iRODSSession(host=grid.host, port=grid.port, zone=grid.zone, user=user, password=password)


def test_groupadmin_makes_a_group_and_manages_only_groups_it_belongs_to(grid, admin):
    made = []
    try:
        made += [admin.users.create("ga_lead", "groupadmin"), admin.users.create("ga_member", "rodsuser")]
        admin.users.modify("ga_lead", "password", "leadpass")
        admin.groups.create("ga_other")
        admin.groups.addmember("ga_other", "ga_member")
        with _session(grid, "ga_lead", "leadpass") as lead:
            lab = lead.groups.create("ga_lab")
            lead.groups.addmember("ga_lab", "ga_lead")      # an empty group: it may add itself
            lead.groups.addmember("ga_lab", "ga_member")
            assert {"ga_lead", "ga_member"} <= {m.name for m in lab.members}
            with pytest.raises(ex.CAT_INSUFFICIENT_PRIVILEGE_LEVEL):   # not a member of ga_other
                lead.groups.addmember("ga_other", "ga_lead")
            lead.groups.removemember("ga_lab", "ga_member")
            assert "ga_member" not in {m.name for m in lab.members}
    finally:
        for group in ("ga_lab", "ga_other"):
            try:
                admin.groups.remove(group)
            except ex.iRODSException:
                pass
        for user in made:
            user.remove()


def test_group_quota_over_is_usage_minus_limit(grid, admin, coll):
    bob = admin.users.create("quota_bob", "rodsuser")
    admin.users.modify("quota_bob", "password", "bpass")
    group = admin.groups.create("quota_bob_group")
    path = f"/{grid.zone}/home/public/quota_bob_file"
    try:
        group.addmember("quota_bob")
        group.set_quota(10000)
        with _session(grid, "quota_bob", "bpass") as bob_session:
            with bob_session.data_objects.open(path, "w") as f:
                f.write(b"_" * 1400)
        admin.groups.calculate_usage()
        over = [int(r[Quota.over]) for r in admin.query(Quota).filter(Quota.user_id == group.id)]
        assert over == [1400 - 10000]
    finally:
        admin.data_objects.unlink(path, force=True)
        group.remove()
        bob.remove()


def test_user_distinguished_names(admin):
    user = admin.users.create("dn_user", "rodsuser")
    try:
        assert user.dn == []
        user.modify("addAuth", "/C=FR/CN=one")
        user.modify("addAuth", "/C=FR/CN=two")
        user.modify("rmAuth", "/C=FR/CN=one")
        assert user.dn == ["/C=FR/CN=two"]
    finally:
        user.remove()


def test_mod_data_obj_meta_sets_comment_and_expiry(session, coll):
    from irods.models import DataObject

    obj = session.data_objects.create(f"{coll}/commented")
    session.data_objects.modDataObjMeta({"objPath": obj.path}, {"dataComments": "day file, 100 Hz",
                                                                "dataExpiry": "4102444800"})
    row = session.query(DataObject.comments, DataObject.expiry).filter(DataObject.id == obj.id).one()
    assert row[DataObject.comments] == "day file, 100 Hz"
    assert row[DataObject.expiry] == "04102444800"
    with pytest.raises(ex.OBJ_PATH_DOES_NOT_EXIST):
        session.data_objects.modDataObjMeta({"objPath": f"{coll}/missing"}, {"dataComments": "x"})


def test_quota_over_is_empty_until_usage_is_computed_and_usage_has_its_columns(grid, admin):
    """chlSetQuota leaves quota_over empty; chlCalcUsageAndQuota fills R_QUOTA_USAGE (columns 2010-2013) and
    quota_over; columns 2020-2023 name the quota's resource and user."""
    from irods.column import Column, Integer, String
    from irods.models import Model, ModelBase

    class Usage(Model):
        user_id = Column(Integer, "COL_QUOTA_USAGE_USER_ID", 2010)
        usage = Column(Integer, "COL_QUOTA_USAGE", 2012)

    class QuotaNames(Model):
        resource = Column(String, "COL_QUOTA_RESC_NAME", 2020)
        user = Column(String, "COL_QUOTA_USER_NAME", 2021)
        kind = Column(String, "COL_QUOTA_USER_TYPE", 2023)

    ModelBase.column_dict = {}     # PRC caches its column table: let it see these columns (its Quota lacks them)
    user = admin.users.create("quota_carol", "rodsuser")
    try:
        admin.users.set_quota("quota_carol", 5000)
        assert [r[Quota.over] for r in admin.query(Quota).filter(Quota.user_id == user.id)] in ([None], [""])
        rows = admin.query(QuotaNames.resource, QuotaNames.user, QuotaNames.kind).filter(Quota.user_id == user.id)
        assert [(r[QuotaNames.resource], r[QuotaNames.user], r[QuotaNames.kind]) for r in rows] == \
            [("total", "quota_carol", "rodsuser")]
        admin.groups.calculate_usage()
        assert [int(r[Quota.over]) for r in admin.query(Quota).filter(Quota.user_id == user.id)] == [-5000]
        me = admin.users.get(admin.username).id
        assert all(int(r[Usage.usage]) >= 0 for r in admin.query(Usage.usage).filter(Usage.user_id == me))
    finally:
        user.remove()
