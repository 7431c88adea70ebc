-- The demo's HubSpot-style destination for MariaDB/MySQL (`cutover demo --into mariadb`): the same
-- tables as destination.sql, in MariaDB's types. The data rows are destination.sql's own.
CREATE TABLE owners (
    id         BIGINT PRIMARY KEY,
    email      VARCHAR(254) NOT NULL UNIQUE,
    first_name VARCHAR(100) NOT NULL,
    last_name  VARCHAR(100) NOT NULL,
    archived   INT NOT NULL DEFAULT 0
) DEFAULT CHARSET = utf8mb4;
CREATE TABLE pipelines (id VARCHAR(64) PRIMARY KEY, label VARCHAR(100) NOT NULL) DEFAULT CHARSET = utf8mb4;
CREATE TABLE pipeline_stages (
    id            VARCHAR(64) PRIMARY KEY,
    pipeline_id   VARCHAR(64) NOT NULL REFERENCES pipelines(id),
    label         VARCHAR(100) NOT NULL,
    display_order INT NOT NULL
) DEFAULT CHARSET = utf8mb4;
CREATE TABLE companies (
    id               BIGINT AUTO_INCREMENT PRIMARY KEY,
    name             VARCHAR(200) NOT NULL,
    domain           VARCHAR(253),
    city             VARCHAR(100),
    country          VARCHAR(100),
    industry         VARCHAR(100),
    hubspot_owner_id BIGINT,
    createdate       DATETIME
) AUTO_INCREMENT = 3000001, DEFAULT CHARSET = utf8mb4;
CREATE TABLE contacts (
    id                  BIGINT AUTO_INCREMENT PRIMARY KEY,
    firstname           VARCHAR(100),
    lastname            VARCHAR(100),
    email               VARCHAR(254),
    phone               VARCHAR(32),
    associatedcompanyid BIGINT,
    hubspot_owner_id    BIGINT NOT NULL,
    lifecyclestage      VARCHAR(40),
    createdate          DATETIME
) AUTO_INCREMENT = 1300001, DEFAULT CHARSET = utf8mb4;
CREATE TABLE deals (
    id                  BIGINT AUTO_INCREMENT PRIMARY KEY,
    dealname            VARCHAR(200) NOT NULL,
    amount              TEXT,
    deal_currency_code  VARCHAR(3),
    pipeline            VARCHAR(64) NOT NULL,
    dealstage           VARCHAR(64) NOT NULL,
    closedate           DATE,
    associatedcompanyid BIGINT,
    hubspot_owner_id    BIGINT,
    createdate          DATETIME
) AUTO_INCREMENT = 4000001, DEFAULT CHARSET = utf8mb4;
CREATE TABLE notes (
    id                  BIGINT AUTO_INCREMENT PRIMARY KEY,
    hs_note_body        TEXT NOT NULL,
    hs_timestamp        DATETIME,
    associatedcontactid BIGINT NOT NULL,
    hubspot_owner_id    BIGINT
) AUTO_INCREMENT = 8000001, DEFAULT CHARSET = utf8mb4;
INSERT INTO pipelines VALUES ('default', 'Sales Pipeline');
INSERT INTO pipeline_stages VALUES
    ('appointmentscheduled', 'default', 'Appointment Scheduled', 0),
    ('qualifiedtobuy', 'default', 'Qualified To Buy', 1),
    ('presentationscheduled', 'default', 'Presentation Scheduled', 2),
    ('decisionmakerboughtin', 'default', 'Decision Maker Bought-In', 3),
    ('contractsent', 'default', 'Contract Sent', 4),
    ('closedwon', 'default', 'Closed Won', 5),
    ('closedlost', 'default', 'Closed Lost', 6);
