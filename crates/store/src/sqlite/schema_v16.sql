-- Version 16: `order_products` is kept by the code that inserts events (`SqliteTx::insert_event`)
-- instead of a trigger. A trigger on `events` made SQLite keep a statement journal for every
-- event inserted (a copy of each page the insert touches, in case the trigger failed halfway),
-- about a tenth of the intake's time during a large import; the rows already there stay.
DROP TRIGGER events_order_products;
