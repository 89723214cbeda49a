-- Raw rows left out of the published read models (negative price, blank slug, blank seller):
-- the quarantine list of the published build (catalog_quarantined_snapshots).
select count(*) as quarantined_rows
from catalog.catalog_quarantined_snapshots
