using System.ComponentModel;
using System.Diagnostics;

namespace EdgeSlm.EdgeModule.Tests.Support;

/// <summary>
/// The programs the module tests need that are not NuGet packages: Debian's mosquitto (the broker the module is
/// tested against) and openssl (the TLS tests' certificates). README lists them; .ci/run installs them.
/// </summary>
public static class Prerequisites
{
    public const string Install = "apt-get install mosquitto openssl";

    /// <summary>The missing programs, each with why the tests need it; empty when all are there.</summary>
    public static IReadOnlyList<string> Missing()
    {
        var missing = new List<string>();
        try
        {
            _ = Mosquitto.Executable;
        }
        catch (InvalidOperationException)
        {
            missing.Add("mosquitto (the MQTT broker of the module tests)");
        }
        if (!OnPath("openssl"))
        {
            missing.Add("openssl (certificates for the TLS tests)");
        }
        return missing;
    }

    /// <summary>Starts a prerequisite program, saying plainly when it is not installed.</summary>
    public static Process Start(ProcessStartInfo start)
    {
        try
        {
            return Process.Start(start) ?? throw new InvalidOperationException($"{start.FileName} did not start");
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException($"{start.FileName} is not installed ({Install}): {e.Message}", e);
        }
    }

    private static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(directory => File.Exists(Path.Combine(directory, program)));
}
