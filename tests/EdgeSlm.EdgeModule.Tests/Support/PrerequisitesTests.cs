namespace EdgeSlm.EdgeModule.Tests.Support;

public sealed class PrerequisitesTests
{
    /// <summary>One plain failure that names what to install, before the many module tests that need it fail on their own.</summary>
    [Fact]
    public void Mosquitto_and_openssl_are_installed()
    {
        IReadOnlyList<string> missing = Prerequisites.Missing();
        Assert.True(missing.Count == 0, $"not installed: {string.Join(", ", missing)}. Install them with: {Prerequisites.Install}");
    }
}
