pub mod compare;
pub mod nhcb;
pub mod runner;
pub mod testfile;
