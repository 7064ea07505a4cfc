#pragma once
int offset(int x);
