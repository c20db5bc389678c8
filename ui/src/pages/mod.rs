pub mod backups;
pub mod dashboard;
pub mod databases;
pub mod servers;
pub mod signin;
pub mod status;
