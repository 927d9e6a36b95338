namespace EdgeSlm.Testing;

/// <summary>
/// Tests that count the process's allocated bytes run alone: any test running beside them allocates too.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AllocationCollection
{
    public const string Name = "Allocation (runs alone)";
}
