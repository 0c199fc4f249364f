-- grain: one row per ISO 4217 currency code legal tender somewhere today
-- materialized: table
-- Reference list for staging: an order's currency must be one of these codes. Codes for testing, for
-- "no currency" (XXX) and for precious metals are not currencies an order is paid in.
create table if not exists staging.ref_currencies (
    currency_code text primary key -- ISO 4217 alphabetic code
)
;;
insert into staging.ref_currencies (currency_code) values
('AED'), ('AFN'), ('ALL'), ('AMD'), ('AOA'), ('ARS'), ('AUD'), ('AWG'), ('AZN'), ('BAM'), ('BBD'), ('BDT'),
('BGN'), ('BHD'), ('BIF'), ('BMD'), ('BND'), ('BOB'), ('BRL'), ('BSD'), ('BTN'), ('BWP'), ('BYN'), ('BZD'),
('CAD'), ('CDF'), ('CHF'), ('CLP'), ('CNY'), ('COP'), ('CRC'), ('CUP'), ('CVE'), ('CZK'), ('DJF'), ('DKK'),
('DOP'), ('DZD'), ('EGP'), ('ERN'), ('ETB'), ('EUR'), ('FJD'), ('FKP'), ('GBP'), ('GEL'), ('GHS'), ('GIP'),
('GMD'), ('GNF'), ('GTQ'), ('GYD'), ('HKD'), ('HNL'), ('HTG'), ('HUF'), ('IDR'), ('ILS'), ('INR'), ('IQD'),
('IRR'), ('ISK'), ('JMD'), ('JOD'), ('JPY'), ('KES'), ('KGS'), ('KHR'), ('KMF'), ('KPW'), ('KRW'), ('KWD'),
('KYD'), ('KZT'), ('LAK'), ('LBP'), ('LKR'), ('LRD'), ('LSL'), ('LYD'), ('MAD'), ('MDL'), ('MGA'), ('MKD'),
('MMK'), ('MNT'), ('MOP'), ('MRU'), ('MUR'), ('MVR'), ('MWK'), ('MXN'), ('MYR'), ('MZN'), ('NAD'), ('NGN'),
('NIO'), ('NOK'), ('NPR'), ('NZD'), ('OMR'), ('PAB'), ('PEN'), ('PGK'), ('PHP'), ('PKR'), ('PLN'), ('PYG'),
('RON'), ('RSD'), ('RUB'), ('RWF'), ('SAR'), ('SBD'), ('SCR'), ('SDG'), ('SEK'), ('SGD'), ('SHP'), ('SLE'),
('SOS'), ('SRD'), ('SSP'), ('STN'), ('SYP'), ('SZL'), ('THB'), ('TJS'), ('TMT'), ('TND'), ('TOP'), ('TRY'),
('TTD'), ('TWD'), ('TZS'), ('UAH'), ('UGX'), ('USD'), ('UYU'), ('UZS'), ('VES'), ('VND'), ('VUV'), ('WST'),
('XAF'), ('XCD'), ('XCG'), ('XOF'), ('XPF'), ('YER'), ('ZAR'), ('ZMW'), ('ZWG')
on conflict do nothing
