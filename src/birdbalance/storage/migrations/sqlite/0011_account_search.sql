-- birdbalance schema v11 (SQLite): account search by name through an index.
-- The same version on PostgreSQL is postgresql/0011_account_search.sql.

-- An FTS5 index of account names with the trigram tokenizer (SQLite 3.34+): a search of
-- three characters or more finds the names containing it, in any case, through the
-- index instead of reading every account. It indexes accounts' own rows (external
-- content: the names are not stored twice) and the triggers below keep it in step.
CREATE VIRTUAL TABLE account_names USING fts5(
    name, content = 'accounts', content_rowid = 'rowid', tokenize = 'trigram'
);
INSERT INTO account_names (account_names) VALUES ('rebuild');

CREATE TRIGGER account_names_insert AFTER INSERT ON accounts BEGIN
    INSERT INTO account_names (rowid, name) VALUES (NEW.rowid, NEW.name);
END;
CREATE TRIGGER account_names_update AFTER UPDATE OF name ON accounts BEGIN
    INSERT INTO account_names (account_names, rowid, name) VALUES ('delete', OLD.rowid, OLD.name);
    INSERT INTO account_names (rowid, name) VALUES (NEW.rowid, NEW.name);
END;
CREATE TRIGGER account_names_delete AFTER DELETE ON accounts BEGIN
    INSERT INTO account_names (account_names, rowid, name) VALUES ('delete', OLD.rowid, OLD.name);
END;
