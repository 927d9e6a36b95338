// One conversion of the bundled models per test run, shared by every test class of the assembly that asks for it.
[assembly: AssemblyFixture(typeof(EdgeSlm.Testing.ConvertedModels))]
