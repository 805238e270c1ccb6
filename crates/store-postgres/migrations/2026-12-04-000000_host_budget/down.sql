DROP TABLE host_budget;
