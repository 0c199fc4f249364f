-- The warehouse lives beside Airflow's metadata database in the team stack's PostgreSQL.
create user martech with password 'martech';
create database martech owner martech;
