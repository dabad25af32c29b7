"""Loads WarehouseSync's master data into a fresh Tryton database (used by scripts/tryton).

    python tryton_setup.py CONFIG DATABASE MASTER_DATA.json

Run with the venv's python after `trytond-admin --all` and module activation. Creates, once
(a second run changes nothing that exists):

- a currency (EUR) and a company "WarehouseSync" whose party is the company itself; the admin
  user is given that company;
- a unit of measure per code used by the master data (symbol = the code: EA, KG, CS, ...), each
  in a category of its own so that nothing is ever converted between them; KG, L and M round
  to 0.001, every other unit to 1;
- per warehouse code W: a warehouse location (code W) whose storage, input and output are one
  storage location (code W-STORAGE), a child storage location per non-available status
  (code W-<status>: allocated, quarantined, in-transit, damaged, quality-hold) and a lost and
  found location (code W-LOST-FOUND) set as the warehouse's;
- a goods product per SKU (product code = the SKU, default unit = its unit);
- a customer party (code WMS-CUSTOMER) and a supplier party (code WMS-SUPPLIER), each with an address,
  for the shipments whose WMS names no Tryton party.

docs/tryton.md says how the adapter maps events onto these.
"""
import json
import sys
from decimal import Decimal

STATUSES = ["allocated", "quarantined", "in-transit", "damaged", "quality-hold"]
FRACTIONAL_UNITS = {"KG": 3, "L": 3, "M": 3}


def main():
    config, database, master_path = sys.argv[1:4]
    with open(master_path, encoding="utf-8") as f:
        master = json.load(f)
    warehouses = master["warehouses"]
    skus = master["skus"]

    from trytond.config import update_etc

    update_etc(config)
    from trytond.pool import Pool
    from trytond.transaction import Transaction

    Pool.start()
    pool = Pool(database)
    pool.init()
    with Transaction().start(database, 0, context={"active_test": False}) as transaction:
        setup(pool, warehouses, skus)
        transaction.commit()
    print(f"tryton_setup: {len(warehouses)} warehouses, {len(skus)} products in {database}", file=sys.stderr)


def one(model, domain):
    found = model.search(domain, limit=1)
    return found[0] if found else None


def setup(pool, warehouses, skus):
    Currency = pool.get("currency.currency")
    Party = pool.get("party.party")
    Company = pool.get("company.company")
    User = pool.get("res.user")
    Uom = pool.get("product.uom")
    UomCategory = pool.get("product.uom.category")
    Template = pool.get("product.template")
    Product = pool.get("product.product")
    Location = pool.get("stock.location")

    currency = one(Currency, [("code", "=", "EUR")])
    if currency is None:
        currency, = Currency.create([{
            "name": "Euro", "code": "EUR", "symbol": "€",
            "rounding": Decimal("0.01"), "digits": 2}])
    company = one(Company, [])
    if company is None:
        party, = Party.create([{"name": "WarehouseSync", "code": "WHSYNC-COMPANY"}])
        company, = Company.create([{"party": party.id, "currency": currency.id}])
    admin = one(User, [("login", "=", "admin")])
    User.write([admin], {"companies": [("add", [company.id])], "company": company.id})

    for code, name in (("WMS-CUSTOMER", "WMS customer"), ("WMS-SUPPLIER", "WMS supplier")):
        if one(Party, [("code", "=", code)]) is None:
            # a customer shipment needs a delivery address: an empty one will do
            Party.create([{"name": name, "code": code, "addresses": [("create", [{}])]}])

    units = {}
    for code in sorted({s["uom"] for s in skus}):
        unit = one(Uom, [("symbol", "=", code), ("category.name", "=", "WMS " + code)])
        if unit is None:
            category, = UomCategory.create([{"name": "WMS " + code}])
            digits = FRACTIONAL_UNITS.get(code, 0)
            unit, = Uom.create([{
                "name": code, "symbol": code, "category": category.id,
                "rate": 1.0, "factor": 1.0,
                "rounding": float(Decimal(1).scaleb(-digits)), "digits": digits}])
        units[code] = unit

    for warehouse in warehouses:
        code = warehouse["code"]
        if one(Location, [("code", "=", code), ("type", "=", "warehouse")]) is not None:
            continue
        lost_found, = Location.create([{
            "name": f"{code} lost and found", "code": f"{code}-LOST-FOUND", "type": "lost_found"}])
        storage, = Location.create([{
            "name": f"{code} storage", "code": f"{code}-STORAGE", "type": "storage"}])
        Location.create([{
            "name": f"{code} {status}", "code": f"{code}-{status}", "type": "storage",
            "parent": storage.id} for status in STATUSES])
        wh, = Location.create([{
            "name": warehouse.get("name") or code, "code": code, "type": "warehouse",
            "storage_location": storage.id, "input_location": storage.id,
            "output_location": storage.id, "lost_found_location": lost_found.id}])
        Location.write([storage], {"parent": wh.id})

    existing = {p.code for p in Product.search([("code", "in", [s["sku"] for s in skus])])}
    new = [s for s in skus if s["sku"] not in existing]
    if new:
        templates = Template.create([{
            "name": s.get("description") or s["sku"], "type": "goods",
            "default_uom": units[s["uom"]].id,
            "products": [("create", [{"suffix_code": s["sku"]}])]} for s in new])
        assert len(templates) == len(new)


if __name__ == "__main__":
    main()
